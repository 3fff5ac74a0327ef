"""A terminal chat with the running assistant through its REST channel.

Quick replies are numbered; typing the number sends the button's payload.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import Any

import requests

from bot.settings import load_settings


def show(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Print the bot's messages; return the quick replies of the last one."""
    buttons: list[dict[str, str]] = []
    for message in messages:
        if message.get("text"):
            print(f"🤖 {message['text']}")
        buttons = message.get("buttons") or []
        for number, button in enumerate(buttons, start=1):
            print(f"   [{number}] {button['title']}")
    return buttons


def main(argv: list[str] | None = None) -> int:
    """Read lines from the terminal and send them to the assistant."""
    settings = load_settings()
    parser = argparse.ArgumentParser(prog="python -m bot.chat")
    parser.add_argument("--url", default=f"http://localhost:{settings.rasa_port}")
    args = parser.parse_args(argv)
    webhook = f"{args.url}/webhooks/rest/webhook"
    sender = f"terminal-{uuid.uuid4().hex[:12]}"
    print("質問を入力してください（終了は Ctrl-D）。")
    buttons: list[dict[str, str]] = []
    for line in sys.stdin:
        text = line.strip()
        if not text:
            continue
        if text.isdigit() and 0 < int(text) <= len(buttons):
            text = buttons[int(text) - 1]["payload"]
        try:
            response = requests.post(webhook, json={"sender": sender, "message": text}, timeout=30)
            response.raise_for_status()
        except requests.RequestException as error:
            reason = error.__class__.__name__
            print(f"アシスタントに接続できませんでした（{reason}）。", file=sys.stderr)
            return 1
        buttons = show(response.json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
