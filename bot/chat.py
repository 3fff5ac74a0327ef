"""A terminal chat with the running assistant through its REST channel.

Quick replies are numbered; typing the number sends the button's payload. The REST
channel is for operators: it must be on (``PRIVACY_BOT_REST=true``) and every call
carries the HTTP API token (``RASA_TOKEN`` or ``var/rasa_token``).
"""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import Any

import requests

from bot.settings import ensure_rasa_token, load_settings


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
    headers = {"Authorization": f"Bearer {ensure_rasa_token(settings)}"}
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
            response = requests.post(
                webhook, json={"sender": sender, "message": text}, headers=headers, timeout=30
            )
            if response.status_code == 404:
                print(
                    "REST チャネルが無効です。.env に PRIVACY_BOT_REST=true を書いて "
                    "make run し直してください。",
                    file=sys.stderr,
                )
                return 1
            response.raise_for_status()
        except requests.RequestException as error:
            reason = error.__class__.__name__
            print(f"アシスタントに接続できませんでした（{reason}）。", file=sys.stderr)
            return 1
        buttons = show(response.json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
