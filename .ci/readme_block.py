"""README code blocks by section: CI runs the first ```bash block under "## Running the tests";
the tests run the examples. One reader for both."""
import sys


def blocks(path: str, heading: str, lang: str = "bash") -> list[str]:
    """Every ```lang block from `heading` to the next `## ` heading, in order."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    section = text[text.index(heading):]
    nxt = section.find("\n## ", len(heading))
    section = section if nxt < 0 else section[:nxt]
    return [b.split("```", 1)[0] for b in section.split(f"```{lang}\n")[1:]]


def block(path: str, heading: str) -> str:
    """The first ```bash block under `heading`, as a script."""
    return blocks(path, heading)[0].strip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(block(sys.argv[1], sys.argv[2]))
