"""Running a command the way an ordinary user would meet the file system: permission bits enforced.

Sessions and CI run as root, and root reads a mode-000 folder as easily as any other: a test of "permission
denied" would pass without the code ever meeting one. `setpriv` (util-linux) starts the command with every
capability dropped from its bounding set, so even as uid 0 it obeys file modes (CAP_DAC_OVERRIDE and
CAP_DAC_READ_SEARCH are gone), while it can still run the project's interpreter under /root. As a
non-root user the command runs as it is.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence

import pytest

DROP_CAPABILITIES = ("setpriv", "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs")


def unprivileged(command: Sequence[str]) -> list[str]:
    """`command`, run so that file permissions apply to it."""
    if os.geteuid() != 0:
        return list(command)
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to test permission errors as root")
    return [*DROP_CAPABILITIES, *command]
