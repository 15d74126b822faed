"""The public data sets the book uses, found locally or downloaded and checksummed.

Each named source lists its files with their public URL and sha256. :func:`fetch` looks for them in order:

1. an explicit ``path`` (a file, or a folder holding the files);
2. ``$HF_SCRATCH_DATA``: a folder laid out like ``shared/data`` (``the-verdict/the-verdict.txt``, ...);
3. the user cache, ``$HF_SCRATCH_CACHE`` or ``$XDG_CACHE_HOME/hf_scratch`` (default ``~/.cache/hf_scratch``),
   with the same layout under ``data/``;
4. a download into that cache, with a progress bar, written to a temporary file and renamed into place only
   once its sha256 matches.

Every file found is checked against its sha256; a mismatch raises :class:`ChecksumError` naming both hashes, and
hf_scratch never overwrites or deletes a file it did not just download. Downloads are off when
``HF_SCRATCH_OFFLINE`` or ``HF_HUB_OFFLINE`` is set (or ``download=False``); then a missing file raises
:class:`DataNotFoundError` naming the data set, the variable to set and the URL.

``sms-spam`` is published as a zip archive; the member ``SMSSpamCollection`` is extracted and saved as
``SMSSpamCollection.tsv``, and the checksum is that of the extracted file (the archive itself is not kept).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

DATA_ENV = "HF_SCRATCH_DATA"
CACHE_ENV = "HF_SCRATCH_CACHE"
OFFLINE_ENVS = ("HF_SCRATCH_OFFLINE", "HF_HUB_OFFLINE")


class DataNotFoundError(FileNotFoundError):
    """A data set is not available locally and may not (or could not) be downloaded."""


class ChecksumError(ValueError):
    """A data file's sha256 is not the published one."""


@dataclass(frozen=True)
class RemoteFile:
    path: str  # relative to the data folder, e.g. "the-verdict/the-verdict.txt"
    url: str
    sha256: str
    size: int
    archive_member: str | None = None  # the file inside the zip at ``url``

    @property
    def name(self) -> str:
        return Path(self.path).name


@dataclass(frozen=True)
class DataSource:
    name: str
    description: str
    files: tuple[RemoteFile, ...]
    licence: str

    @property
    def folder(self) -> str:
        return str(Path(self.files[0].path).parent)


_RASBT = "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main"
_GPT2 = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main"

SOURCES: dict[str, DataSource] = {
    s.name: s
    for s in [
        DataSource(
            "the-verdict", "Edith Wharton's short story 'The Verdict' (1908), the book's ch. 2 and 5 text",
            (RemoteFile("the-verdict/the-verdict.txt", f"{_RASBT}/ch02/01_main-chapter-code/the-verdict.txt",
                        "b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f", 20_479),),
            "public domain",
        ),
        DataSource(
            "tinyshakespeare", "Tiny Shakespeare, the usual small character-level corpus",
            (RemoteFile("tinyshakespeare/input.txt",
                        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
                        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed", 1_115_394),),
            "public domain text",
        ),
        DataSource(
            "sms-spam", "UCI SMS Spam Collection: label<TAB>text, no header, 5,574 rows (book ch. 6)",
            (RemoteFile("sms-spam/SMSSpamCollection.tsv",
                        "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip",
                        "7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d", 477_907,
                        archive_member="SMSSpamCollection"),),
            "CC BY 4.0",
        ),
        DataSource(
            "alpaca-1100", "1,100 Alpaca-style {instruction, input, output} records (book ch. 7)",
            (RemoteFile("alpaca-instructions/instruction-data.json",
                        f"{_RASBT}/ch07/01_main-chapter-code/instruction-data.json",
                        "7e09a9af353722ca15c18bc580f093f9c39d3178335a75177319cb1e1d163944", 203_524),),
            "Apache-2.0",
        ),
        DataSource(
            "gpt2-bpe", "OpenAI GPT-2 byte-level BPE: encoder.json (50,257 tokens) and vocab.bpe (50,000 merges)",
            (RemoteFile("gpt2-bpe/encoder.json", f"{_GPT2}/encoder.json",
                        "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783", 1_042_301),
             RemoteFile("gpt2-bpe/vocab.bpe", f"{_GPT2}/vocab.bpe",
                        "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5", 456_318)),
            "MIT",
        ),
    ]
}


def get_source(name: str) -> DataSource:
    try:
        return SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(SOURCES)}") from None


def cache_dir() -> Path:
    """Where downloads go: ``$HF_SCRATCH_CACHE``, else ``$XDG_CACHE_HOME/hf_scratch``, else ``~/.cache/hf_scratch``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "hf_scratch"


def offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() not in ("", "0", "false", "no") for v in OFFLINE_ENVS)


_verified: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, to hash each file once


def sha256_of(path: str | os.PathLike) -> str:
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _verified:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _verified[key] = digest.hexdigest()
    return _verified[key]


def _check(source: DataSource, remote: RemoteFile, path: Path) -> Path:
    actual = sha256_of(path)
    if actual != remote.sha256:
        raise ChecksumError(
            f"{path} does not match the published {source.name!r} file: sha256 {actual}, expected {remote.sha256}. "
            f"hf_scratch leaves the file alone; replace or delete it yourself, or pass verify=False to use it as is"
        )
    return path


def _candidates(remote: RemoteFile, path: Path | None, cache: Path) -> list[Path]:
    found = []
    if path is not None:
        found.append(path / remote.name if path.is_dir() else path)
        if path.is_dir():
            found.append(path / remote.path)
        return found  # an explicit path is the only place looked at
    if os.environ.get(DATA_ENV):
        found.append(Path(os.environ[DATA_ENV]).expanduser() / remote.path)
    found.append(cache / "data" / remote.path)
    return found


def fetch_files(
    name: str,
    path: str | os.PathLike | None = None,
    *,
    cache: str | os.PathLike | None = None,
    download: bool | None = None,
    verify: bool = True,
    progress: bool = True,
) -> dict[str, Path]:
    """Local paths of every file of data set ``name``, keyed by file name (see the module docstring for the
    search order). ``download=None`` downloads unless an offline variable is set."""
    source = get_source(name)
    if path is not None:
        path = Path(path).expanduser()
        if not path.exists():
            raise DataNotFoundError(f"{name}: the given path {path} does not exist")
        if path.is_file() and len(source.files) > 1:
            raise ValueError(f"{name} has several files ({', '.join(f.name for f in source.files)}); pass their folder")
    cache = Path(cache).expanduser() if cache is not None else cache_dir()
    may_download = (not offline()) if download is None else download
    result = {}
    for remote in source.files:
        for candidate in _candidates(remote, path, cache):
            if candidate.is_file():
                result[remote.name] = _check(source, remote, candidate) if verify else candidate
                break
        else:
            if path is not None:
                raise DataNotFoundError(f"{name}: {remote.name} not found at {path}")
            if not may_download:
                raise DataNotFoundError(
                    f"data set {name!r} ({remote.name}) is not available offline: set {DATA_ENV} to a folder holding "
                    f"{remote.path}, pass its path, or allow downloading it from {remote.url} "
                    f"(unset HF_SCRATCH_OFFLINE / HF_HUB_OFFLINE)"
                )
            result[remote.name] = _download(source, remote, cache / "data" / remote.path, progress=progress)
    return result


def fetch(name: str, path: str | os.PathLike | None = None, **kwargs) -> Path:
    """The local path of data set ``name``: its file, or for several files (``gpt2-bpe``) their folder."""
    files = fetch_files(name, path, **kwargs)
    if len(files) == 1:
        return next(iter(files.values()))
    folders = {p.parent for p in files.values()}
    if len(folders) != 1:
        raise ValueError(f"{name}: its files were found in different folders: {sorted(map(str, folders))}")
    return folders.pop()


def read_text(name: str, path: str | os.PathLike | None = None, **kwargs) -> str:
    """The text of a one-file data set (``the-verdict``, ``tinyshakespeare``, ``sms-spam``, ``alpaca-1100``)."""
    return fetch(name, path, **kwargs).read_text(encoding="utf-8")


def load_alpaca(path: str | os.PathLike | None = None, **kwargs) -> list[dict[str, str]]:
    """The 1,100 instruction records of ``alpaca-1100``."""
    return json.loads(read_text("alpaca-1100", path, **kwargs))


def load_sms_spam(path: str | os.PathLike | None = None, **kwargs) -> list[tuple[str, str]]:
    """``(label, text)`` rows of ``sms-spam``; the label is ``ham`` or ``spam``."""
    rows = []
    for number, line in enumerate(read_text("sms-spam", path, **kwargs).splitlines(), start=1):
        label, sep, text = line.partition("\t")
        if not sep or label not in ("ham", "spam"):
            raise ValueError(f"sms-spam line {number}: expected 'ham' or 'spam', a tab, then the text; got {line!r}")
        rows.append((label, text))
    return rows


def _urlopen(url: str):
    """The one place that touches the network (tests replace it)."""
    return urllib.request.urlopen(url, timeout=60)  # fixed https URLs from SOURCES


def _download(source: DataSource, remote: RemoteFile, destination: Path, *, progress: bool = True) -> Path:
    from tqdm.auto import tqdm

    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _urlopen(remote.url) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            buffer = io.BytesIO()
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"{source.name}: {Path(remote.url).name}",
                      disable=not progress) as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    buffer.write(block)
                    bar.update(len(block))
    except OSError as error:  # URLError, timeouts, refused connections
        raise DataNotFoundError(
            f"could not download data set {source.name!r} from {remote.url}: {error}. Set {DATA_ENV} to a folder "
            f"holding {remote.path}, or pass its path"
        ) from error
    data = buffer.getvalue()
    if remote.archive_member is not None:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                data = archive.read(remote.archive_member)
        except (zipfile.BadZipFile, KeyError) as error:
            raise ValueError(f"{remote.url} is not a zip holding {remote.archive_member}: {error}") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != remote.sha256:
        raise ChecksumError(f"the download of {source.name!r} from {remote.url} has sha256 {actual}, expected "
                            f"{remote.sha256}; nothing was saved")
    handle, temporary = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        if destination.exists():  # appeared meanwhile (another process); keep it, check it
            os.unlink(temporary)
            return _check(source, remote, destination)
        os.replace(temporary, destination)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return destination
