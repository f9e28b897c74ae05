"""Print the first ```bash block under a README heading (used by .ci/run and the tests)."""
import sys


def block(path: str, heading: str) -> str:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start = text.index(heading + "\n")
    section = text[start:]
    nxt = section.find("\n## ", len(heading))
    section = section if nxt < 0 else section[:nxt]
    body = section[section.index("```bash\n") + len("```bash\n"):]
    return body[:body.index("```")].strip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(block(sys.argv[1], sys.argv[2]))
