"""A stand-in for the Hugging Face Hub API on 127.0.0.1, for testing uploads offline.

It implements the endpoints huggingface_hub 2.4 calls to create a repo and commit files, as its source shows:

- ``POST /api/repos/create`` (``HfApi.create_repo``; 409 when the repo exists, which ``exist_ok`` accepts), and
  ``GET /api/models/{repo}``, which ``create_repo(exist_ok=True)`` asks after a 401 or 403;
- ``POST /api/validate-yaml`` (``create_commit`` checks a README.md's metadata first; here: ``yaml.safe_load``);
- ``POST /api/models/{repo}/preupload/{revision}`` (which files go as LFS: like a new Hub repo's .gitattributes,
  binary types such as ``*.safetensors`` and ``*.png`` and anything over 10 MB; the rest go inline, base64, in the
  commit);
- ``POST /{repo}.git/info/lfs/objects/batch``, then ``PUT`` of each object to the upload URL it hands out and
  ``POST`` to its verify URL (the legacy LFS protocol; the client must run with ``HF_HUB_DISABLE_XET``, since the
  Xet protocol needs a content-addressed storage service this fake does not have);
- ``POST /api/models/{repo}/commit/{revision}`` (NDJSON: a header line, then ``file`` / ``lfsFile`` lines);
- ``HEAD``/``GET /{repo}/resolve/{revision}/{path}``: a committed file (with the ``ETag`` and ``X-Repo-Commit``
  headers ``hf_hub_download`` reads), or 404 ``EntryNotFound`` for files the repo does not have (transformers'
  ``push_to_hub`` looks for an existing README.md first).

Every request must carry the expected bearer token, except the LFS object transfers (on the Hub those go to
pre-signed storage URLs). Every request is recorded; requests the fake does not know are answered 404 and listed
in ``unexpected``. The server stops after ``max_requests`` requests or ``lifetime_s`` seconds, whichever first,
and when the ``with`` block ends. It binds 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import yaml

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".png", ".jpg", ".gz", ".zip", ".npy")
LFS_SIZE = 10 * 1024 * 1024
REPO = r"(?P<repo>[\w.-]+/[\w.-]+)"


class FakeHub:
    def __init__(self, token: str = "hf_fake_token", user: str = "fake-user", max_requests: int = 300,
                 lifetime_s: float = 120.0):
        self.token, self.user = token, user
        self.max_requests, self.lifetime_s = max_requests, lifetime_s
        self.repos: dict[str, dict] = {}  # repo id -> {"private": ..., "files": {path: bytes}, "commits": [...]}
        self.lfs: dict[str, bytes] = {}  # sha256 -> content, once PUT
        self.requests: list[tuple[str, str]] = []
        self.unexpected: list[str] = []
        self.lfs_paths: list[str] = []  # files committed as LFS pointers
        self.validated_cards: list[dict] = []
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------- life cycle
    def __enter__(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            fake = hub

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        self._timer = threading.Timer(self.lifetime_s, self.stop)  # a hung test cannot keep it alive
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._timer.cancel()
        if self._thread.is_alive():
            self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------------------------------- views
    def files(self, repo_id: str) -> dict[str, bytes]:
        return dict(self.repos[repo_id]["files"])


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub
    timeout = 30  # a stuck client connection cannot hold a thread forever

    def log_message(self, *args):  # keep pytest output clean
        pass

    # ------------------------------------------------------------------------------------------- plumbing
    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, status: int, payload=None, headers: dict | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, message: str, code: str | None = None) -> None:
        headers = {"X-Error-Message": message, **({"X-Error-Code": code} if code else {})}
        self._reply(status, {"error": message}, headers)

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {self.fake.token}":
            return True
        self._error(401, "Invalid credentials in Authorization header")
        return False

    def _handle(self) -> None:
        fake = self.fake
        path = unquote(urlsplit(self.path).path)
        body = self._body() if self.command in ("POST", "PUT") else b""
        with fake._lock:
            fake.requests.append((self.command, path))
            if len(fake.requests) > fake.max_requests:
                fake.unexpected.append(f"over {fake.max_requests} requests: {self.command} {path}")
                threading.Thread(target=fake.stop, daemon=True).start()
                return self._error(400, "fake hub: request limit reached")
            for method, pattern, route in ROUTES:
                match = re.fullmatch(pattern, path)
                if method == self.command and match:
                    return route(self, body, **match.groupdict())
            fake.unexpected.append(f"{self.command} {path}")
            return self._error(404, f"fake hub: no endpoint {self.command} {path}")

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _handle

    # ------------------------------------------------------------------------------------------- endpoints
    def create_repo(self, body: bytes) -> None:
        if not self._authorized():
            return
        payload = json.loads(body)
        if payload.get("type", "model") != "model":
            return self._error(400, f"fake hub: only model repos, not {payload.get('type')}")
        repo_id = f"{payload.get('organization') or self.fake.user}/{payload['name']}"
        url = f"{self.fake.url}/{repo_id}"
        if repo_id in self.fake.repos:  # the Hub's 409 carries the url, which create_repo(exist_ok=True) returns
            message = "You already created this model repo"
            return self._reply(409, {"error": message, "url": url}, {"X-Error-Message": message})
        self.fake.repos[repo_id] = {"private": payload.get("visibility") == "private", "files": {}, "commits": []}
        self._reply(200, {"url": url, "name": repo_id, "id": hashlib.sha1(repo_id.encode()).hexdigest()[:24]})

    def validate_yaml(self, body: bytes) -> None:
        if not self._authorized():
            return
        content = json.loads(body)["content"]
        match = re.match(r"^---\n(.*?)\n---\n", content, re.DOTALL)
        if not match:
            return self._reply(200, {"errors": [], "warnings": [{"message": "empty or missing yaml metadata"}]})
        try:
            metadata = yaml.safe_load(match.group(1))
        except yaml.YAMLError as error:
            return self._reply(400, {"errors": [{"message": f"invalid YAML: {error}"}]})
        if not isinstance(metadata, dict):
            return self._reply(400, {"errors": [{"message": "metadata must be a YAML mapping"}]})
        self.fake.validated_cards.append(metadata)
        self._reply(200, {"errors": [], "warnings": []})

    def preupload(self, body: bytes, repo: str, revision: str) -> None:
        if not self._authorized() or not self._known(repo):
            return
        files = json.loads(body)["files"]
        modes = [{"path": f["path"], "uploadMode": "lfs" if self._is_lfs(f["path"], f["size"]) else "regular",
                  "shouldIgnore": False, "oid": None} for f in files]
        self._reply(200, {"files": modes, "commitOid": "0" * 40})

    @staticmethod
    def _is_lfs(path: str, size: int) -> bool:
        return path.lower().endswith(LFS_SUFFIXES) or size > LFS_SIZE

    def lfs_batch(self, body: bytes, repo: str) -> None:
        if not self._authorized() or not self._known(repo):
            return
        payload = json.loads(body)
        if payload.get("operation") != "upload" or "basic" not in payload.get("transfers", ["basic"]):
            return self._error(400, f"fake hub: unsupported LFS batch request {payload}")
        objects = []
        for obj in payload["objects"]:
            actions = None if obj["oid"] in self.fake.lfs else {
                "upload": {"href": f"{self.fake.url}/fake-lfs/{obj['oid']}/{obj['size']}"},
                "verify": {"href": f"{self.fake.url}/fake-lfs-verify/{obj['oid']}", "header": {}},
            }
            objects.append({"oid": obj["oid"], "size": obj["size"], "authenticated": True,
                            **({"actions": actions} if actions else {})})
        self._reply(200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

    def lfs_put(self, body: bytes, oid: str, size: str) -> None:
        if hashlib.sha256(body).hexdigest() != oid or len(body) != int(size):
            return self._error(400, f"fake hub: LFS object does not match its oid {oid} and size {size}")
        self.fake.lfs[oid] = body
        self._reply(200, {})

    def lfs_verify(self, body: bytes, oid: str) -> None:
        payload = json.loads(body)
        if payload.get("oid") != oid or oid not in self.fake.lfs or len(self.fake.lfs[oid]) != payload.get("size"):
            return self._error(404, f"fake hub: LFS object {oid} was not uploaded")
        self._reply(200, {"success": True})

    def commit(self, body: bytes, repo: str, revision: str) -> None:
        if not self._authorized() or not self._known(repo):
            return
        if revision != "main":
            return self._error(400, f"fake hub: only the main branch, not {revision}")
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            return self._error(400, "fake hub: a commit starts with a header line")
        files = {}
        for line in lines[1:]:
            value = line["value"]
            if line["key"] == "file" and value.get("encoding") == "base64":
                files[value["path"]] = base64.b64decode(value["content"])
            elif line["key"] == "lfsFile":
                content = self.fake.lfs.get(value["oid"])
                if content is None or len(content) != value["size"]:
                    return self._error(400, f"fake hub: LFS object of {value['path']} was never uploaded")
                files[value["path"]] = content
                self.fake.lfs_paths.append(value["path"])
            else:
                return self._error(400, f"fake hub: unsupported commit operation {line['key']}")
        state = self.fake.repos[repo]
        state["files"].update(files)
        oid = hashlib.sha1(body).hexdigest()
        state["commits"].append({"summary": lines[0]["value"]["summary"], "files": sorted(files), "oid": oid})
        self._reply(200, {"commitUrl": f"{self.fake.url}/{repo}/commit/{oid}", "commitOid": oid,
                          "pullRequestUrl": None})

    def repo_info(self, body: bytes, repo: str) -> None:
        # create_repo(exist_ok=True) asks for this after a 401/403, to see whether the repo exists anyway.
        if not self._authorized() or not self._known(repo):
            return
        state = self.fake.repos[repo]
        self._reply(200, {"id": repo, "private": state["private"],
                          "sha": state["commits"][-1]["oid"] if state["commits"] else None})

    def resolve(self, body: bytes, repo: str, revision: str, path: str) -> None:
        if repo in self.fake.repos and path in self.fake.repos[repo]["files"]:
            # What hf_hub_download reads from the HEAD, then the bytes on GET (no redirect to a CDN here).
            data, state = self.fake.repos[repo]["files"][path], self.fake.repos[repo]
            self.send_response(200)
            for key, value in (("Content-Length", str(len(data))), ("Content-Type", "application/octet-stream"),
                               ("ETag", f'"{hashlib.sha256(data).hexdigest()}"'),
                               ("X-Repo-Commit", state["commits"][-1]["oid"])):
                self.send_header(key, value)
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(data)
            return None
        if repo not in self.fake.repos:
            return self._error(404, "Repository not found", "RepoNotFound")
        self._error(404, "Entry not found", "EntryNotFound")

    def _known(self, repo: str) -> bool:
        if repo in self.fake.repos:
            return True
        self._error(404, f"Repository {repo} not found", "RepoNotFound")
        return False


ROUTES = (
    ("POST", r"/api/repos/create", _Handler.create_repo),
    ("POST", r"/api/validate-yaml", _Handler.validate_yaml),
    ("POST", rf"/api/models/{REPO}/preupload/(?P<revision>[^/]+)", _Handler.preupload),
    ("POST", rf"/{REPO}\.git/info/lfs/objects/batch", _Handler.lfs_batch),
    ("PUT", r"/fake-lfs/(?P<oid>[0-9a-f]{64})/(?P<size>\d+)", _Handler.lfs_put),
    ("POST", r"/fake-lfs-verify/(?P<oid>[0-9a-f]{64})", _Handler.lfs_verify),
    ("POST", rf"/api/models/{REPO}/commit/(?P<revision>[^/]+)", _Handler.commit),
    ("GET", rf"/api/models/{REPO}", _Handler.repo_info),
    ("HEAD", rf"/{REPO}/resolve/(?P<revision>[^/]+)/(?P<path>.+)", _Handler.resolve),
    ("GET", rf"/{REPO}/resolve/(?P<revision>[^/]+)/(?P<path>.+)", _Handler.resolve),
)
