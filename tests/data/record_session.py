"""Record a real multi-turn Claude Code session through the proxy (run by hand, not by pytest).

    .venv/bin/python tests/data/record_session.py tests/data/sessions/NAME.json

Claude Code (the pinned binary) drives the proxy; the fake Ollama plays a model that calls
tools over several turns (parallel calls, a failing command, a read, a final answer). Every
Messages request the proxy receives is saved, as Claude Code sent it, for the prompt-cache
prefix tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import proxy.server.app  # noqa: E402
from proxy.config import load_settings  # noqa: E402
from proxy.server.runner import serve  # noqa: E402
from tests.claude_code import claude_code_binary, claude_code_env  # noqa: E402
from tests.fake_ollama import FakeOllama, Model, text_stream  # noqa: E402


def call(name: str, **arguments) -> dict:
    return {"function": {"name": name, "arguments": arguments}}


async def main(out: Path) -> None:
    recorded: list[dict] = []
    original = proxy.server.app.validate_request

    def recording(body):
        recorded.append(json.loads(json.dumps(body)))
        return original(body)

    proxy.server.app.validate_request = recording
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "project"
        work.mkdir()
        turns = iter([
            text_stream("I'll create both files.", thinking="Two files, in parallel.",
                        tool_calls=[call("Write", file_path=str(work / "a.txt"), content="A\n"),
                                    call("Bash", command=f"echo B > {work / 'b.txt'}", description="write b")]),
            text_stream("Let me check.", tool_calls=[call("Bash", command="cat missing.txt", description="fails")]),
            text_stream("", thinking="Read a back.", tool_calls=[call("Read", file_path=str(work / "a.txt"))]),
            text_stream("Both files are written."),
        ])
        fake = FakeOllama(models=[Model("qwen3:8b", capabilities=("completion", "tools", "thinking"))])

        def answer(record, index):
            if any(t["function"]["name"] == "Write" for t in record.body.get("tools", [])):
                return next(turns, text_stream("Done."))
            return text_stream("Session title")

        fake.on_chat = answer
        async with trio.open_nursery() as nursery:
            await nursery.start(fake.serve)
            settings = load_settings({"port": 0, "ollama_url": fake.url}, environ={}, read_config_file=False)
            urls = await nursery.start(serve, settings)
            result = await trio.run_process(
                [str(claude_code_binary()), "-p", "write a.txt and b.txt, then check them",
                 "--output-format", "json", "--allowedTools", "Write,Bash,Read"],
                cwd=work, env=claude_code_env(urls[0], Path(tmp) / "home"), capture_stdout=True,
                capture_stderr=True, check=False, stdin=subprocess.DEVNULL,
            )
            nursery.cancel_scope.cancel()
    print(result.stdout.decode()[-400:], file=sys.stderr)
    out.write_text(json.dumps({"claude_code": "2.1.328", "requests": recorded}, indent=1))
    print(f"recorded {len(recorded)} requests to {out}", file=sys.stderr)


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]))
