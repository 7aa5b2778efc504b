"""The page's server process: `python -m ui.server run APP [streamlit flags] -- [app options]`.

What ui/launch.py starts. Before handing over to Streamlit's command line it installs the page guard
(ui/guard.py) and starts opening the process's one service (ui/bootstrap.py `open_in_background`) from the app
options after `--`, so the watched folders are indexed from the moment the server starts, whether or not a
browser ever opens the page. The pages get that same service (`process_service`); if opening failed, they
show why as a banner and try again.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rag import offline  # noqa: F401  (before anything heavy: no downloads, the egress guard)


def app_arguments(argv: Sequence[str]) -> list[str]:
    """The app's own options: what follows the first `--` (none when there is no `--`)."""
    argv = list(argv)
    return argv[argv.index("--") + 1 :] if "--" in argv else []


def main(argv: Sequence[str] | None = None) -> None:
    from ui import guard
    from ui.bootstrap import close_process_service, open_in_background
    from ui.state import parse_options

    argv = list(sys.argv[1:] if argv is None else argv)
    guard.install()  # before anything is served
    options = parse_options(app_arguments(argv))
    open_in_background(options.data_dir, options.paths)
    try:
        guard.main(argv)  # Streamlit's own command line; it runs the server until it is stopped
    finally:
        # Here, not only at exit: at interpreter exit the thread pools are shut down before atexit hooks run,
        # and indexing still under way then failed with "cannot schedule new futures after shutdown".
        close_process_service()


if __name__ == "__main__":
    main()
