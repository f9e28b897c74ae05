"""The documentation stays true to the tree: the README and docs/ link only to files (and
headings) that exist, the README stays a front door, and docs/cli.md is exactly what the
generator prints from the argparse parser, so a flag or job added without regenerating it
fails here."""
import glob
import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT

PAGES = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
#: [text](target) and ![alt](target), the target up to a space or ")"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: str) -> set:
    with open(path, encoding="utf-8") as f:
        text = FENCE.sub("", f.read())
    return {_slug(m) for m in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def _links(path: str):
    with open(path, encoding="utf-8") as f:
        text = FENCE.sub("", f.read())  # code blocks hold shell, not links
    return LINK.findall(text)


def test_every_relative_link_in_readme_and_docs_resolves():
    checked = 0
    for page in PAGES:
        for target in _links(page):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
                continue
            file, _, anchor = target.partition("#")
            path = os.path.normpath(os.path.join(os.path.dirname(page), file)) if file else page
            where = f"{os.path.relpath(page, ROOT)} links to {target}"
            assert os.path.exists(path), f"{where}: no such file"
            assert os.path.commonpath([path, ROOT]) == ROOT, f"{where}: outside the repository"
            if anchor and path.endswith(".md"):
                assert anchor in _anchors(path), f"{where}: no such heading"
            checked += 1
    assert checked > 30, f"only {checked} links found: the scan is broken"


def test_every_docs_page_is_reachable_from_the_readme_and_the_readme_stays_short():
    seen, todo = set(), [PAGES[0]]
    while todo:  # follow links from the README, page by page
        page = todo.pop()
        if page in seen or not page.endswith(".md") or not os.path.isfile(page):
            continue
        seen.add(page)
        todo += [os.path.normpath(os.path.join(os.path.dirname(page), t.partition("#")[0]))
                 for t in _links(page) if t.partition("#")[0] and ":" not in t]
    unreachable = sorted(os.path.relpath(p, ROOT) for p in set(PAGES) - seen)
    assert unreachable == [], "docs pages no link leads to from README.md"
    size = os.path.getsize(PAGES[0])
    assert size < 12 * 1024, f"README.md is {size} bytes: move detail into docs/"


@pytest.mark.parametrize("tool,page", [("cli_reference.py", "cli.md"),
                                       ("weights_table.py", "weights_registry.md")])
def test_generated_pages_equal_the_generator_output(tool, page):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", tool)],
                       capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr
    with open(os.path.join(ROOT, "docs", page), encoding="utf-8") as f:
        assert f.read() == r.stdout, \
            f"docs/{page} is stale: python tools/{tool} > docs/{page}"


def test_cli_reference_names_every_flag_and_job():
    from resnet.cli import parser
    from resnet.jobs import JOBS

    with open(os.path.join(ROOT, "docs", "cli.md"), encoding="utf-8") as f:
        text = f.read()
    for action in parser()._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag != "--help":
                assert f"### `{flag}`" in text, flag
        for choice in action.choices or ():
            assert f"`{choice}`" in text, (action.dest, choice)
    for name in JOBS.names():
        assert f"| `{name}` |" in text, name
