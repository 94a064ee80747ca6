"""Build hook: compiles the verifier's native reader (``src/ingestload/verify/_scan.c``) into the wheel.

It needs a C compiler and Python's headers. Without them — or on a platform without
``dl_iterate_phdr`` — the build goes on with a warning, and the verifier reads every record through
confluent-kafka's ``Message`` methods instead (slower, same verdicts; ``ingestload.verify.scan`` says why).
An editable install (``make install``) puts the built module beside its source.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("src/ingestload/verify/_scan.c")


def compile_native(root: Path, out_dir: Path) -> Path:
    """Compile :data:`SOURCE` into ``out_dir``; returns the module's path, raises on failure."""
    if not sys.platform.startswith("linux"):
        raise RuntimeError(f"the native reader is built on Linux only, not {sys.platform}")
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    target = out_dir / f"_scan{suffix}"
    compiler = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    include = sysconfig.get_paths()["include"]
    if not (Path(include) / "Python.h").exists():
        raise RuntimeError(f"Python's headers are not installed ({include}/Python.h)")
    command = [
        *compiler,
        "-O2",
        "-shared",
        "-fPIC",
        "-Wall",
        f"-I{include}",
        str(root / SOURCE),
        "-o",
        str(target),
        "-ldl",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed: {done.stderr.strip()[-2000:]}")
    return target


class NativeReaderHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        here = root / SOURCE.parent
        if version == "editable":
            for old in here.glob("_scan*.so"):
                old.unlink()
        self._tmp = tempfile.mkdtemp(prefix="ingestload-native-")
        try:
            built = compile_native(root, Path(self._tmp))
        except (OSError, RuntimeError) as error:
            self.app.display_warning(
                f"ingestload: the verifier's native reader was not built ({error}); the verifier will "
                "read records through confluent-kafka's Message methods (slower, same verdicts)"
            )
            return
        if version == "editable":
            shutil.copy2(built, here / built.name)
        else:
            build_data["force_include"][str(built)] = f"ingestload/verify/{built.name}"
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if getattr(self, "_tmp", None):
            shutil.rmtree(self._tmp, ignore_errors=True)
