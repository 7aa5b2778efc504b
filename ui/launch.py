"""Starting the Streamlit page with Archivist's settings: loopback only, no telemetry, no Deploy button,
and the guard of ui/guard.py (Host/Origin checks against DNS rebinding, optional access token)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

APP = Path(__file__).with_name("app.py")

# Passed as flags so they hold whatever config.toml a user may have in ~/.streamlit.
STREAMLIT_FLAGS: dict[str, str] = {
    "browser.gatherUsageStats": "false",  # Streamlit's telemetry
    "client.toolbarMode": "minimal",  # hides "Deploy": nothing here goes to a cloud
    "server.headless": "true",  # do not try to open a browser or ask for an e-mail address
    "server.fileWatcherType": "none",
    "server.runOnSave": "false",
    "global.developmentMode": "false",
    "server.enableCORS": "true",
    "server.enableXsrfProtection": "true",
}


def streamlit_command(host: str, port: int, data_dir: Path, paths: Sequence[Path]) -> list[str]:
    """The argv that serves ui/app.py; the app reads its own options after `--`.

    `ui.server` is Streamlit's own command line with the Host/Origin/token guard installed first and the
    service (index, watcher) opened at once, so indexing starts with the server, not with the first page.
    """
    command = [sys.executable, "-m", "ui.server", "run", str(APP), "--server.address", host, "--server.port", str(port)]
    for key, value in STREAMLIT_FLAGS.items():
        command += [f"--{key}", value]
    command += ["--", "--data-dir", str(data_dir)]
    command += [str(path.expanduser().absolute()) for path in paths]
    return command
