"""A local, standard-library-only server that speaks enough of the Hugging Face Hub protocol for pushes and loads.

No hub is reachable from the machines these tests run on, and no existing package accepts pushes, so this module
serves the routes that ``huggingface_hub``'s own client calls. Point ``HF_ENDPOINT`` at it (with a temporary
``HF_HOME``) and the real client code runs end to end over real HTTP on loopback.

Routes served (``{repo}`` is ``namespace/name``; ``{type}`` is ``models``, ``datasets`` or ``spaces``):

| client call                         | route                                                      |
| ----------------------------------- | ---------------------------------------------------------- |
| ``whoami``                          | ``GET  /api/whoami-v2``                                    |
| ``create_repo`` / ``delete_repo``   | ``POST /api/repos/create``, ``DELETE /api/repos/delete``    |
| ``repo_info`` / ``model_info``      | ``GET  /api/{type}/{repo}[/revision/{rev}]``               |
| ``list_repo_tree`` / ``list_repo_files`` | ``GET /api/{type}/{repo}/tree/{rev}[/{path}]``        |
| ``get_paths_info``                  | ``POST /api/{type}/{repo}/paths-info/{rev}``               |
| ``list_repo_refs`` / ``list_repo_commits`` | ``GET /api/{type}/{repo}/refs``, ``.../commits/{rev}`` |
| ``create_branch`` / ``create_tag``  | ``POST /api/{type}/{repo}/branch/{name}``, ``.../tag/{rev}`` |
| README metadata check               | ``POST /api/validate-yaml``                                |
| ``preupload_lfs_files``             | ``POST /api/{type}/{repo}/preupload/{rev}``                |
| LFS batch, upload and verify        | ``POST /{repo}.git/info/lfs/objects/batch``, ``PUT``/``POST /__lfs/...`` |
| ``create_commit`` (NDJSON)          | ``POST /api/{type}/{repo}/commit/{rev}``                   |
| ``hf_hub_download`` (HEAD then GET) | ``/{repo}/resolve/{rev}/{path}``, LFS blobs redirect to ``/__cdn/...`` |

Behaviour mirrors the real Hub where the client depends on it:

* Writes need ``Authorization: Bearer <token>``. No token gives 401; an unknown token gives 401 with
  ``X-Error-Message: Invalid credentials in Authorization header``; a token without rights on the namespace gives 403.
* A missing (or unreadable private) repo gives ``X-Error-Code: RepoNotFound`` (401 when anonymous, 404 otherwise),
  a missing revision ``RevisionNotFound`` and a missing file ``EntryNotFound`` (with ``X-Repo-Commit``), all 404.
* Every commit gets a 40-hex sha and keeps its parent, so any earlier commit stays downloadable; branch names,
  tags and (prefixes of) commit shas all resolve. A new repo starts with an "initial commit" holding
  ``.gitattributes``.
* Upload modes: by default every file is "regular" (its bytes travel base64-encoded inside the commit). This is
  the one mode that works whatever the client: with ``hf_xet`` installed, the client sends "lfs" files through the
  Xet protocol, which a standard-library server cannot speak. ``HubServer(lfs=True)`` answers "lfs" as the Hub
  does and serves the LFS batch API; use it with clients that set ``HF_HUB_DISABLE_XET=1``.
* LFS files resolve to a 302 whose ``Location`` is a signed URL on another host name (``localhost`` instead of
  ``127.0.0.1``), carrying ``X-Linked-Etag`` (the sha256) and ``X-Linked-Size``, like the Hub's CDN redirect.
* A commit is checked in full before anything is stored, so a rejected commit leaves the repo untouched.

``HubServer.add_files`` commits files directly, for tests that only read a repo. Use it in tests as a
context manager::

    with HubServer(tokens={"hf_alice": "alice"}) as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_alice", "HF_HOME": str(tmp_path / "hf_home")}

or standalone: ``python tests/hub_server.py --port 8808 --token hf_alice=alice``.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import fnmatch
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

logger = logging.getLogger(__name__)

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024  # the Hub sends files of 10 MB and more through LFS whatever their name
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.h5", "*.onnx", "*.msgpack", "*.model",
                    "*.npy", "*.npz", "*.zip", "*.tar.gz", "*.arrow", "*.parquet")
)
_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX_PREFIX = re.compile(r"[0-9a-f]{7,40}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


def _git_blob_oid(content: bytes) -> str:
    """The sha1 git gives a blob: sha1(b"blob <size>\\0" + content)."""
    return hashlib.sha1(b"blob %d\x00" % len(content) + content).hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------------------------------------------------
# Storage: repos, commits and file versions, all in memory
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredFile:
    """One version of one file. LFS files are stored by content too; the git tree would hold their pointer."""

    content: bytes
    lfs: bool

    @property
    def size(self) -> int:
        return len(self.content)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def pointer(self) -> bytes:
        return _lfs_pointer(self.sha256, self.size)

    @property
    def git_oid(self) -> str:
        """What git stores in the tree: the blob itself, or for LFS files the pointer blob."""
        return _git_blob_oid(self.pointer if self.lfs else self.content)


@dataclass
class Commit:
    oid: str
    parent: str | None
    files: dict[str, StoredFile]
    title: str
    message: str
    author: str
    date: str


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit oid
    tags: dict[str, str] = field(default_factory=dict)
    pull_requests: int = 0

    @property
    def namespace(self) -> str:
        return self.repo_id.split("/")[0]

    def resolve(self, revision: str) -> Commit | None:
        """Branch, tag, ``refs/heads/x``, ``refs/tags/x``, ``refs/pr/N``, a full commit sha or a unique prefix."""
        for prefix, refs in (("refs/heads/", self.branches), ("refs/tags/", self.tags)):
            if revision.startswith(prefix) and revision[len(prefix):] in refs:
                return self.commits[refs[revision[len(prefix):]]]
        if revision in self.branches:
            return self.commits[self.branches[revision]]
        if revision in self.tags:
            return self.commits[self.tags[revision]]
        if revision in self.commits:
            return self.commits[revision]
        if _HEX_PREFIX.fullmatch(revision):
            matches = [oid for oid in self.commits if oid.startswith(revision)]
            if len(matches) == 1:
                return self.commits[matches[0]]
        return None

    def history(self, commit: Commit) -> list[Commit]:
        """``commit`` and its ancestors, newest first."""
        chain = [commit]
        while chain[-1].parent is not None:
            chain.append(self.commits[chain[-1].parent])
        return chain

    def last_commit_touching(self, commit: Commit, path: str) -> Commit:
        """The most recent ancestor of ``commit`` (itself included) that changed ``path`` or anything under it."""
        chain = self.history(commit)

        def snapshot(c: Commit) -> dict[str, str]:
            return {p: f.git_oid for p, f in c.files.items() if p == path or p.startswith(path + "/")}

        for newer, older in zip(chain, chain[1:]):
            if snapshot(newer) != snapshot(older):
                return newer
        return chain[-1]


class HubError(Exception):
    """An HTTP error answer, with the headers the client keys on (``X-Error-Code``, ``X-Error-Message``)."""

    def __init__(self, status: int, message: str, *, code: str | None = None, headers: dict | None = None,
                 body: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        self.body = body or {}


def _repo_not_found(user: str | None) -> HubError:
    # The Hub answers 401 to anonymous callers and 404 to authenticated ones; both carry RepoNotFound.
    status = HTTPStatus.UNAUTHORIZED if user is None else HTTPStatus.NOT_FOUND
    return HubError(status, "Repository not found", code="RepoNotFound")


class HubState:
    """All repos, users and pending LFS uploads of one server. Every public method is thread-safe."""

    def __init__(self, tokens: dict[str, str], orgs: dict[str, set[str]] | None = None, lfs: bool = False):
        self.tokens = dict(tokens)  # token -> user name
        self.read_only_tokens: set[str] = set()  # tokens with the "read" role: they may read but not write
        self.lfs = lfs
        self.orgs = {org: set(members) for org, members in (orgs or {}).items()}
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}  # sha256 -> content, uploaded but maybe not committed yet
        self.lock = threading.RLock()
        self._counter = 0

    # -- identity ----------------------------------------------------------------------------------------------------

    def user_for(self, authorization: str | None) -> str | None:
        """The user a request acts for; ``None`` when anonymous. An unknown token is an error, as on the Hub."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or token.strip() not in self.tokens:
            raise HubError(HTTPStatus.UNAUTHORIZED, "Invalid credentials in Authorization header")
        return self.tokens[token.strip()]

    def namespaces_of(self, user: str) -> set[str]:
        return {user} | {org for org, members in self.orgs.items() if user in members}

    def can_read(self, repo: Repo, user: str | None) -> bool:
        return not repo.private or (user is not None and repo.namespace in self.namespaces_of(user))

    def repo_for_read(self, repo_type: str, repo_id: str, user: str | None) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or not self.can_read(repo, user):
            raise _repo_not_found(user)
        return repo

    def repo_for_write(self, repo_type: str, repo_id: str, user: str | None) -> Repo:
        if user is None:
            raise HubError(HTTPStatus.UNAUTHORIZED, "You must be authenticated to write to a repository")
        repo = self.repo_for_read(repo_type, repo_id, user)
        if repo.namespace not in self.namespaces_of(user):
            raise HubError(HTTPStatus.FORBIDDEN, f"You don't have the rights to write to {repo_id}")
        return repo

    # -- commits -----------------------------------------------------------------------------------------------------

    def new_commit(self, repo: Repo, parent: Commit | None, files: dict[str, StoredFile], title: str,
                   message: str, author: str) -> Commit:
        with self.lock:
            self._counter += 1
            seed = json.dumps([repo.repo_id, parent.oid if parent else None, sorted((p, f.git_oid) for p, f in
                               files.items()), title, message, time.time_ns(), self._counter])
        oid = hashlib.sha1(seed.encode()).hexdigest()
        commit = Commit(oid, parent.oid if parent else None, files, title, message, author, _now())
        repo.commits[oid] = commit
        return commit

    def create_repo(self, repo_type: str, namespace: str, name: str, private: bool, user: str) -> Repo:
        with self.lock:
            repo_id = f"{namespace}/{name}"
            if (repo_type, repo_id) in self.repos:
                raise HubError(HTTPStatus.CONFLICT, f"You already created this {repo_type} repo")
            repo = Repo(repo_type, repo_id, private, _now())
            gitattributes = {".gitattributes": StoredFile(DEFAULT_GITATTRIBUTES.encode(), lfs=False)}
            repo.branches["main"] = self.new_commit(repo, None, gitattributes, "initial commit", "", user).oid
            self.repos[(repo_type, repo_id)] = repo
            return repo

    def upload_mode(self, commit: Commit, path: str, size: int, sample: bytes) -> str:
        """"lfs" or "regular", decided as the Hub does: .gitattributes patterns, binary content, or size."""
        if not self.lfs:
            return "regular"
        if size >= LFS_SIZE_THRESHOLD or b"\x00" in sample:
            return "lfs"
        attributes = commit.files.get(".gitattributes")
        text = attributes.content.decode("utf-8", "replace") if attributes else ""
        for line in text.splitlines():
            pattern, *attrs = line.split()
            if "filter=lfs" in attrs and (fnmatch.fnmatch(path, pattern) or
                                          ("/" not in pattern and fnmatch.fnmatch(path.rsplit("/", 1)[-1], pattern))):
                return "lfs"
        return "regular"


# --------------------------------------------------------------------------------------------------------------------
# HTTP layer
# --------------------------------------------------------------------------------------------------------------------


def _card_metadata(readme: StoredFile | None) -> dict:
    """The few top-level keys of a README's YAML header that repo info reports (scalars and plain lists)."""
    if readme is None:
        return {}
    text = readme.content.decode("utf-8", "replace")
    match = re.match(r"---\n(.*?)\n---", text, flags=re.S)
    if not match:
        return {}
    metadata: dict = {}
    current_list: list | None = None
    for line in match.group(1).splitlines():
        if line.startswith("- ") and current_list is not None:
            current_list.append(line[2:].strip().strip("'\""))
        elif re.match(r"[A-Za-z_][\w-]*:", line):
            key, _, value = line.partition(":")
            value = value.strip().strip("'\"")
            current_list = None if value else []
            metadata[key] = value if value else current_list
        else:
            current_list = None
    return metadata


class HubRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
    server: "_HubHTTPServer"

    # -- plumbing ----------------------------------------------------------------------------------------------------

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - signature fixed by the base class
        logger.debug("%s - %s", self.address_string(), format % args)

    @property
    def state(self) -> HubState:
        return self.server.state

    @property
    def base_url(self) -> str:
        return f"http://{self.headers.get('Host') or '%s:%d' % self.server.server_address[:2]}"

    def _read_body(self) -> bytes:
        return self.body

    def _drain_body(self) -> bytes:
        """Read the whole request body up front, so an early error answer leaves the kept-alive connection clean."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _json_body(self) -> dict:
        try:
            return json.loads(self._read_body() or b"{}")
        except json.JSONDecodeError as error:
            raise HubError(HTTPStatus.BAD_REQUEST, f"Request body is not valid JSON: {error}") from error

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None,
              content_type: str = "application/json; charset=utf-8") -> None:
        self.send_response(status)
        all_headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
        all_headers.update(headers or {})
        for name, value in all_headers.items():
            self.send_header(name, str(value))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        self.server.request_log.append((self.command, self.path, status))

    def _send_json(self, payload, status: int = HTTPStatus.OK, headers: dict | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers)

    def _dispatch(self) -> None:
        self.body = self._drain_body()
        try:
            self.user = self.state.user_for(self.headers.get("Authorization"))
            self.read_only = self.headers.get("Authorization", "").partition(" ")[2].strip() in \
                self.state.read_only_tokens
            self._route()
        except HubError as error:
            headers = {"X-Error-Message": error.message, **error.headers}
            if error.code:
                headers["X-Error-Code"] = error.code
            self._send_json({"error": error.message, **error.body}, error.status, headers)
        except Exception as error:  # a server bug must show up as a 500 the test can see, not a dropped connection
            logger.exception("hub server failed on %s %s", self.command, self.path)
            self._send_json({"error": f"Internal server error: {error!r}"}, HTTPStatus.INTERNAL_SERVER_ERROR)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch

    # -- routing -----------------------------------------------------------------------------------------------------

    def _route(self) -> None:
        split = urlsplit(self.path)
        self.query = parse_qs(split.query)
        raw = [segment for segment in split.path.split("/") if segment]
        parts = [unquote(segment) for segment in raw]
        method = self.command
        if parts[:2] == ["api", "whoami-v2"] and method == "GET":
            return self._whoami()
        if parts[:2] == ["api", "agent-harnesses"] and method == "GET":
            return self._send_json({"standardEnvVars": [], "harnesses": {}})  # the client's agent detection registry
        if parts[:2] == ["api", "validate-yaml"] and method == "POST":
            return self._validate_yaml()
        if parts[:2] == ["api", "repos"] and len(parts) == 3:
            if parts[2] == "create" and method == "POST":
                return self._create_repo()
            if parts[2] == "delete" and method == "DELETE":
                return self._delete_repo()
        if parts[:1] == ["api"] and len(parts) >= 4 and parts[1] in REPO_TYPES:
            return self._api_repo_route(REPO_TYPES[parts[1]], f"{parts[2]}/{parts[3]}", parts[4:], method)
        if parts[:1] == ["__lfs"] and len(parts) == 3:
            return self._lfs_storage(parts[1], parts[2])
        if parts[:1] == ["__cdn"] and len(parts) == 2 and method in ("GET", "HEAD"):
            return self._cdn_download(parts[1])
        repo_type, rest = "model", parts
        if parts[:1] in (["datasets"], ["spaces"]):
            repo_type, rest = REPO_TYPES[parts[0]], parts[1:]
        if len(rest) >= 2 and rest[1].endswith(".git") and rest[2:] == ["info", "lfs", "objects", "batch"]:
            return self._lfs_batch(repo_type, f"{rest[0]}/{rest[1][:-4]}")
        if len(rest) >= 5 and rest[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve(repo_type, f"{rest[0]}/{rest[1]}", rest[3], "/".join(rest[4:]))
        self.server.unhandled.append((method, self.path))
        raise HubError(HTTPStatus.NOT_FOUND, f"Sorry, this local hub does not serve {method} {split.path}")

    def _api_repo_route(self, repo_type: str, repo_id: str, rest: list[str], method: str) -> None:
        action = rest[0] if rest else None
        if method == "GET" and action is None:
            return self._repo_info(repo_type, repo_id, None)
        if method == "GET" and action == "revision" and len(rest) == 2:
            return self._repo_info(repo_type, repo_id, rest[1])
        if method == "GET" and action == "tree" and len(rest) >= 2:
            return self._tree(repo_type, repo_id, rest[1], "/".join(rest[2:]))
        if method == "POST" and action == "paths-info" and len(rest) == 2:
            return self._paths_info(repo_type, repo_id, rest[1])
        if method == "GET" and action == "refs":
            return self._refs(repo_type, repo_id)
        if method == "GET" and action == "commits" and len(rest) == 2:
            return self._commits(repo_type, repo_id, rest[1])
        if method == "POST" and action == "preupload" and len(rest) == 2:
            return self._preupload(repo_type, repo_id, rest[1])
        if method == "POST" and action == "commit" and len(rest) == 2:
            return self._commit(repo_type, repo_id, rest[1])
        if method in ("POST", "DELETE") and action == "branch" and len(rest) == 2:
            return self._branch(repo_type, repo_id, rest[1])
        if method == "POST" and action == "tag" and len(rest) == 2:
            return self._tag(repo_type, repo_id, rest[1])
        self.server.unhandled.append((method, self.path))
        raise HubError(HTTPStatus.NOT_FOUND, f"Sorry, this local hub does not serve {method} {self.path}")

    # -- account and repos -------------------------------------------------------------------------------------------

    def _repo_for_write(self, repo_type: str, repo_id: str) -> Repo:
        if self.read_only:
            raise HubError(HTTPStatus.FORBIDDEN, "This token has the read role and cannot write")
        return self.state.repo_for_write(repo_type, repo_id, self.user)

    def _whoami(self) -> None:
        if self.user is None:
            raise HubError(HTTPStatus.UNAUTHORIZED, "Invalid username or password.")
        orgs = sorted(self.state.namespaces_of(self.user) - {self.user})
        self._send_json({
            "type": "user", "id": hashlib.sha1(self.user.encode()).hexdigest()[:24], "name": self.user,
            "fullname": self.user, "orgs": [{"type": "org", "name": org} for org in orgs],
            "auth": {"type": "access_token", "accessToken": {"displayName": "local-hub",
                                                                 "role": "read" if self.read_only else "write"}},
        })

    def _validate_yaml(self) -> None:
        content = self._json_body().get("content", "")
        if content.startswith("---") and not re.match(r"---\n.*?\n---", content, flags=re.S):
            error = {"message": "The YAML header opened by '---' is never closed by a second '---' line"}
            return self._send_json({"errors": [error], "warnings": []}, HTTPStatus.BAD_REQUEST)
        self._send_json({"errors": [], "warnings": []})

    def _create_repo(self) -> None:
        body = self._json_body()
        if self.user is None:
            raise HubError(HTTPStatus.UNAUTHORIZED, "You must be authenticated to create a repository")
        if self.read_only:
            raise HubError(HTTPStatus.FORBIDDEN, "This token has the read role and cannot create repositories")
        name, namespace = body.get("name") or "", body.get("organization") or self.user
        repo_type = body.get("type") or "model"
        if not _NAME.fullmatch(name) or not _NAME.fullmatch(namespace) or "--" in name or ".." in name:
            raise HubError(HTTPStatus.BAD_REQUEST, f"Invalid repo name '{namespace}/{name}'")
        if namespace not in self.state.namespaces_of(self.user):
            raise HubError(HTTPStatus.FORBIDDEN, f"You don't have the rights to create a {repo_type} under the "
                                                 f"namespace \"{namespace}\"")
        private = body.get("private", body.get("visibility") == "private") or False
        url = f"{self.base_url}/{URL_PREFIXES[repo_type]}{namespace}/{name}"
        try:
            repo = self.state.create_repo(repo_type, namespace, name, bool(private), self.user)
        except HubError as error:
            error.body["url"] = url  # the client reads it when it passed exist_ok=True
            raise
        self._send_json({"url": url, "name": repo.repo_id, "id": repo.repo_id})

    def _delete_repo(self) -> None:
        body = self._json_body()
        repo_id = f"{body.get('organization') or self.user}/{body.get('name')}"
        repo_type = body.get("type") or "model"
        with self.state.lock:
            self._repo_for_write(repo_type, repo_id)
            del self.state.repos[(repo_type, repo_id)]
        self._send(HTTPStatus.OK)

    def _commit_or_error(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(HTTPStatus.NOT_FOUND, f"Invalid rev id: {revision}", code="RevisionNotFound")
        return commit

    def _repo_info(self, repo_type: str, repo_id: str, revision: str | None) -> None:
        repo = self.state.repo_for_read(repo_type, repo_id, self.user)
        commit = self._commit_or_error(repo, revision or "main")
        blobs = self.query.get("blobs", ["false"])[0].lower() == "true"
        siblings = []
        for path, stored in sorted(commit.files.items()):
            sibling: dict = {"rfilename": path}
            if blobs:
                sibling.update(size=stored.size, blobId=stored.git_oid)
                if stored.lfs:
                    sibling["lfs"] = {"sha256": stored.sha256, "size": stored.size, "pointerSize": len(stored.pointer)}
            siblings.append(sibling)
        card = _card_metadata(commit.files.get("README.md"))
        tags = card.get("tags") if isinstance(card.get("tags"), list) else []
        self._send_json({
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24], "id": repo_id, "author": repo.namespace,
            "sha": commit.oid, "lastModified": commit.date, "createdAt": repo.created_at, "private": repo.private,
            "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": tags,
            "library_name": card.get("library_name") or None, "pipeline_tag": card.get("pipeline_tag") or None,
            "cardData": card or None, "siblings": siblings,
        })

    # -- listing -----------------------------------------------------------------------------------------------------

    def _entry(self, repo: Repo, commit: Commit, path: str, expand: bool) -> dict:
        if path in commit.files:
            stored = commit.files[path]
            entry: dict = {"type": "file", "oid": stored.git_oid, "size": stored.size, "path": path}
            if stored.lfs:
                entry["lfs"] = {"oid": stored.sha256, "size": stored.size, "pointerSize": len(stored.pointer)}
        else:
            listing = sorted((p, f.git_oid) for p, f in commit.files.items() if p.startswith(path + "/"))
            entry = {"type": "directory", "oid": hashlib.sha1(json.dumps(listing).encode()).hexdigest(),
                     "size": 0, "path": path}
        if expand:
            last = repo.last_commit_touching(commit, path)
            entry["lastCommit"] = {"id": last.oid, "title": last.title, "date": last.date}
        return entry

    @staticmethod
    def _directories(commit: Commit) -> set[str]:
        return {"/".join(path.split("/")[:depth]) for path in commit.files for depth in range(1, path.count("/") + 1)}

    def _tree(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        repo = self.state.repo_for_read(repo_type, repo_id, self.user)
        commit = self._commit_or_error(repo, revision)
        path = path.strip("/")
        recursive = self.query.get("recursive", ["false"])[0].lower() == "true"
        expand = self.query.get("expand", ["false"])[0].lower() == "true"
        directories = self._directories(commit)
        if path and path not in directories:
            raise HubError(HTTPStatus.NOT_FOUND, f"{path} does not exist on \"{revision}\"", code="EntryNotFound",
                           headers={"X-Repo-Commit": commit.oid})
        prefix = path + "/" if path else ""
        candidates = sorted(directories | set(commit.files))
        selected = [p for p in candidates if p.startswith(prefix) and (recursive or "/" not in p[len(prefix):])]
        self._send_json([self._entry(repo, commit, p, expand) for p in selected])

    def _paths_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self.state.repo_for_read(repo_type, repo_id, self.user)
        commit = self._commit_or_error(repo, revision)
        form = parse_qs(self._read_body().decode())
        expand = form.get("expand", ["false"])[0].lower() == "true"
        known = set(commit.files) | self._directories(commit)
        paths = [p.strip("/") for p in form.get("paths", [])]
        self._send_json([self._entry(repo, commit, p, expand) for p in paths if p in known])

    def _refs(self, repo_type: str, repo_id: str) -> None:
        repo = self.state.repo_for_read(repo_type, repo_id, self.user)
        branches = {name: oid for name, oid in repo.branches.items() if not name.startswith("refs/pr/")}
        pulls = {name: oid for name, oid in repo.branches.items() if name.startswith("refs/pr/")}
        payload = {
            "branches": [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": o} for n, o in branches.items()],
            "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": o} for n, o in repo.tags.items()],
            "converts": [],
        }
        if self.query.get("include_prs"):
            payload["pullRequests"] = [{"name": n.removeprefix("refs/"), "ref": n, "targetCommit": o}
                                       for n, o in pulls.items()]
        self._send_json(payload)

    def _commits(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self.state.repo_for_read(repo_type, repo_id, self.user)
        commit = self._commit_or_error(repo, revision)
        self._send_json([
            {"id": c.oid, "title": c.title, "message": c.message, "date": c.date, "authors": [{"user": c.author}]}
            for c in repo.history(commit)
        ])

    def _branch(self, repo_type: str, repo_id: str, branch: str) -> None:
        with self.state.lock:
            repo = self._repo_for_write(repo_type, repo_id)
            if self.command == "DELETE":
                if branch not in repo.branches or branch == "main":
                    raise HubError(HTTPStatus.NOT_FOUND, f"Invalid rev id: {branch}", code="RevisionNotFound")
                del repo.branches[branch]
                return self._send(HTTPStatus.OK)
            starting_point = self._json_body().get("startingPoint") or "main"
            if branch in repo.branches:
                raise HubError(HTTPStatus.CONFLICT, "Reference already exists")
            repo.branches[branch] = self._commit_or_error(repo, starting_point).oid
        self._send(HTTPStatus.OK)

    def _tag(self, repo_type: str, repo_id: str, revision: str) -> None:
        body = self._json_body()
        with self.state.lock:
            repo = self._repo_for_write(repo_type, repo_id)
            tag = body.get("tag") or ""
            if not tag:
                raise HubError(HTTPStatus.BAD_REQUEST, "A tag name is required")
            if tag in repo.tags:
                raise HubError(HTTPStatus.CONFLICT, "Reference already exists")
            repo.tags[tag] = self._commit_or_error(repo, revision).oid
        self._send(HTTPStatus.OK)

    # -- upload ------------------------------------------------------------------------------------------------------

    def _preupload(self, repo_type: str, repo_id: str, revision: str) -> None:
        body = self._json_body()
        repo = self._repo_for_write(repo_type, repo_id)
        commit = self._commit_or_error(repo, revision)
        answers = []
        for item in body.get("files", []):
            path, size = item["path"], int(item["size"])
            mode = self.state.upload_mode(commit, path, size, base64.b64decode(item.get("sample", "")))
            existing = commit.files.get(path)
            oid = None
            if existing is not None:
                # The client compares this with its own oid: sha256 for LFS files, git blob sha1 otherwise.
                oid = existing.sha256 if mode == "lfs" else _git_blob_oid(existing.content)
            answers.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        self._send_json({"files": answers, "commitOid": commit.oid})

    def _sign(self, oid: str) -> str:
        return hmac.new(self.server.secret, oid.encode(), hashlib.sha256).hexdigest()

    def _lfs_batch(self, repo_type: str, repo_id: str) -> None:
        body = self._json_body()
        self._repo_for_write(repo_type, repo_id)
        if body.get("operation") != "upload":
            raise HubError(HTTPStatus.BAD_REQUEST, "This local hub only serves LFS uploads through the batch API")
        objects = []
        for obj in body.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            answer: dict = {"oid": oid, "size": size, "authenticated": True}
            if oid not in self.state.lfs_objects:  # already uploaded objects get no action, as on the Hub
                signature = self._sign(oid)
                answer["actions"] = {
                    "upload": {"href": f"{self.base_url}/__lfs/upload/{oid}?sig={signature}", "header": {}},
                    "verify": {"href": f"{self.base_url}/__lfs/verify/{oid}?sig={signature}", "header": {}},
                }
            objects.append(answer)
        self._send_json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                        headers={"Content-Type": "application/vnd.git-lfs+json"})

    def _lfs_storage(self, action: str, oid: str) -> None:
        """The storage side of an LFS upload: a signed URL stands in for the caller's token, like a presigned URL."""
        if not hmac.compare_digest(self.query.get("sig", [""])[0], self._sign(oid)):
            raise HubError(HTTPStatus.FORBIDDEN, "Request signature does not match")
        if action == "upload" and self.command == "PUT":
            content = self._read_body()
            if hashlib.sha256(content).hexdigest() != oid:
                raise HubError(HTTPStatus.BAD_REQUEST, f"Uploaded content does not hash to {oid}")
            with self.state.lock:
                self.state.lfs_objects[oid] = content
            return self._send(HTTPStatus.OK, headers={"ETag": f'"{hashlib.md5(content).hexdigest()}"'})
        if action == "verify" and self.command == "POST":
            body = self._json_body()
            stored = self.state.lfs_objects.get(oid)
            if stored is None or len(stored) != int(body.get("size", -1)):
                raise HubError(HTTPStatus.NOT_FOUND, f"LFS object {oid} was not uploaded in full")
            return self._send_json({"success": True})
        raise HubError(HTTPStatus.NOT_FOUND, f"Unknown LFS storage action {self.command} {action}")

    def _commit(self, repo_type: str, repo_id: str, revision: str) -> None:
        lines = [line for line in self._read_body().split(b"\n") if line.strip()]
        with self.state.lock:
            repo = self._repo_for_write(repo_type, repo_id)
            if revision not in repo.branches:
                if repo.resolve(revision) is not None:
                    raise HubError(HTTPStatus.BAD_REQUEST, f"Can only commit to a branch, not to {revision}")
                raise HubError(HTTPStatus.NOT_FOUND, f"Invalid rev id: {revision}", code="RevisionNotFound")
            head = repo.commits[repo.branches[revision]]
            try:
                items = [json.loads(line) for line in lines]
            except json.JSONDecodeError as error:
                raise HubError(HTTPStatus.BAD_REQUEST, f"Commit payload is not valid NDJSON: {error}") from error
            if not items or items[0].get("key") != "header":
                raise HubError(HTTPStatus.BAD_REQUEST, "Commit payload must start with a 'header' line")
            header = items[0]["value"]
            if header.get("parentCommit") and repo.resolve(header["parentCommit"]) is not head:
                raise HubError(HTTPStatus.PRECONDITION_FAILED,
                               f"A commit has happened since {header['parentCommit']}. Please refresh and try again.")
            files = dict(head.files)
            for item in items[1:]:  # everything is checked before the repo changes, so a bad commit leaves no trace
                self._apply_operation(files, item.get("key"), item.get("value") or {})
            target = revision
            if self.query.get("create_pr"):
                repo.pull_requests += 1
                target = f"refs/pr/{repo.pull_requests}"
            commit = self.state.new_commit(repo, head, files, header.get("summary") or "", header.get("description")
                                           or "", self.user)
            repo.branches[target] = commit.oid
        repo_url = f"{self.base_url}/{URL_PREFIXES[repo_type]}{repo_id}"
        self._send_json({
            "success": True, "commitOid": commit.oid, "commitUrl": f"{repo_url}/commit/{commit.oid}",
            "hookOutput": "",
            "pullRequestUrl": f"{repo_url}/discussions/{repo.pull_requests}" if target != revision else None,
        })

    def _apply_operation(self, files: dict[str, StoredFile], key: str | None, value: dict) -> None:
        path = str(value.get("path", "")).strip("/")
        if not path or any(part in ("", ".", "..") for part in path.split("/")) or path.startswith(".git/"):
            raise HubError(HTTPStatus.BAD_REQUEST, f"Invalid path in commit: {value.get('path')!r}")
        if key == "file":
            if value.get("encoding") != "base64":
                raise HubError(HTTPStatus.BAD_REQUEST, f"Unsupported encoding {value.get('encoding')!r} for {path}")
            files[path] = StoredFile(base64.b64decode(value.get("content", "")), lfs=False)
        elif key == "lfsFile":
            content = self.state.lfs_objects.get(value.get("oid", ""))
            if content is None:
                raise HubError(HTTPStatus.UNPROCESSABLE_ENTITY, f"Your push was rejected because the LFS object for "
                                                                f"{path} ({value.get('oid')}) was never uploaded")
            files[path] = StoredFile(content, lfs=True)
        elif key == "deletedFile":
            if path not in files:
                raise HubError(HTTPStatus.NOT_FOUND, f"A file with this name doesn't exist: {path}",
                               code="EntryNotFound")
            del files[path]
        elif key == "deletedFolder":
            doomed = [p for p in files if p.startswith(path + "/")]
            if not doomed:
                raise HubError(HTTPStatus.NOT_FOUND, f"A folder with this name doesn't exist: {path}",
                               code="EntryNotFound")
            for p in doomed:
                del files[p]
        else:
            raise HubError(HTTPStatus.BAD_REQUEST, f"Unknown commit operation {key!r}")

    # -- download ----------------------------------------------------------------------------------------------------

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        repo = self.state.repo_for_read(repo_type, repo_id, self.user)
        commit = self._commit_or_error(repo, revision)
        stored = commit.files.get(path)
        if stored is None:
            raise HubError(HTTPStatus.NOT_FOUND, "Entry not found", code="EntryNotFound",
                           headers={"X-Repo-Commit": commit.oid})
        headers = {"X-Repo-Commit": commit.oid, "Accept-Ranges": "bytes", "Vary": "Origin, Accept"}
        if stored.lfs:
            # Like the Hub's CDN redirect: another host, a signed URL, and the file's identity in X-Linked-* headers.
            location = (f"http://{self.server.cdn_host}:{self.server.server_address[1]}/__cdn/{stored.sha256}"
                        f"?sig={self._sign(stored.sha256)}&filename={quote(path.rsplit('/', 1)[-1])}")
            headers.update({"Location": location, "ETag": f'"{stored.git_oid}"',
                            "X-Linked-Etag": f'"{stored.sha256}"', "X-Linked-Size": str(stored.size)})
            return self._send(HTTPStatus.FOUND, b"", headers, content_type="text/plain; charset=utf-8")
        headers["ETag"] = f'"{stored.git_oid}"'
        self._send_content(stored.content, headers)

    def _cdn_download(self, sha256: str) -> None:
        if not hmac.compare_digest(self.query.get("sig", [""])[0], self._sign(sha256)):
            raise HubError(HTTPStatus.FORBIDDEN, "Request signature does not match")
        content = self.state.lfs_objects.get(sha256)
        if content is None:
            raise HubError(HTTPStatus.NOT_FOUND, "No such object")
        self._send_content(content, {"ETag": f'"{sha256}"', "Accept-Ranges": "bytes"})

    def _send_content(self, content: bytes, headers: dict) -> None:
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if match and int(match.group(1)) < len(content):
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else len(content) - 1
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
            return self._send(HTTPStatus.PARTIAL_CONTENT, content[start:end + 1], headers,
                              content_type="application/octet-stream")
        self._send(HTTPStatus.OK, content, headers, content_type="application/octet-stream")


# --------------------------------------------------------------------------------------------------------------------
# Server object
# --------------------------------------------------------------------------------------------------------------------


class _HubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, state: HubState, cdn_host: str):
        super().__init__(address, HubRequestHandler)
        self.state = state
        self.cdn_host = cdn_host
        self.secret = secrets.token_bytes(32)
        self.request_log: list[tuple[str, str, int]] = []
        self.unhandled: list[tuple[str, str]] = []


class HubServer:
    """A local Hub on a free loopback port, running in a background thread.

    Args:
        tokens: access token -> user name; these tokens have write rights on their user's namespaces.
        read_only_tokens: access token -> user name, for tokens with the "read" role.
        orgs: organisation name -> member user names (members can write to the organisation's namespace).
        host: address to bind; the endpoint is ``http://{host}:{port}``.
        port: 0 picks a free port.
        cdn_host: host name used in LFS download redirects; a different name from ``host`` makes the client treat
            the redirect as leaving the Hub (and drop its token), as it does for the real CDN.
        lfs: answer "lfs" upload modes for binary, large or ``.gitattributes``-matched files (see module docstring);
            off by default so that clients with ``hf_xet`` installed can push.
    """

    def __init__(self, tokens: dict[str, str] | None = None, orgs: dict[str, set[str]] | None = None,
                 host: str = "127.0.0.1", port: int = 0, cdn_host: str = "localhost", lfs: bool = False,
                 read_only_tokens: dict[str, str] | None = None):
        self.state = HubState({**(tokens or {}), **(read_only_tokens or {})}, orgs, lfs=lfs)
        self.state.read_only_tokens = set(read_only_tokens or {})
        self._httpd = _HubHTTPServer((host, port), self.state, cdn_host)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def request_log(self) -> list[tuple[str, str, int]]:
        """(method, raw path, status) of every request answered so far."""
        return self._httpd.request_log

    @property
    def unhandled(self) -> list[tuple[str, str]]:
        """Requests for routes this server does not know; a test can assert this stays empty."""
        return self._httpd.unhandled

    def start(self) -> "HubServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="local-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- seeding and introspection for tests --------------------------------------------------------------------------

    def add_files(self, repo_id: str, files: dict[str, bytes], repo_type: str = "model", private: bool = False,
                  title: str = "Upload files") -> str:
        """Commit ``files`` (path -> content) to ``repo_id`` on ``main``, creating the repo if needed; returns the
        commit sha. A shortcut for tests that need a repo to read from (a dataset of parquet files, say) and do not
        test the upload itself."""
        namespace, name = repo_id.split("/")
        with self.state.lock:
            repo = self.repo(repo_id, repo_type) or self.state.create_repo(repo_type, namespace, name, private,
                                                                            namespace)
            parent = repo.commits[repo.branches["main"]]
            stored = {path: StoredFile(content, lfs=self.state.upload_mode(parent, path, len(content), content[:512]) ==
                                       "lfs") for path, content in files.items()}
            commit = self.state.new_commit(repo, parent, {**parent.files, **stored}, title, "", namespace)
            repo.branches["main"] = commit.oid
            return commit.oid


    def repo(self, repo_id: str, repo_type: str = "model") -> Repo | None:
        with self.state.lock:
            return self.state.repos.get((repo_type, repo_id))

    def files_at(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, bytes]:
        """Path -> content of every file of ``repo_id`` at ``revision``."""
        repo = self.repo(repo_id, repo_type)
        if repo is None:
            raise KeyError(f"No {repo_type} repo {repo_id!r} on this local hub")
        commit = repo.resolve(revision)
        if commit is None:
            raise KeyError(f"Revision {revision!r} does not exist in {repo_id!r}")
        return {path: stored.content for path, stored in commit.files.items()}

    def lfs_paths_at(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> set[str]:
        commit = self.repo(repo_id, repo_type).resolve(revision)
        return {path for path, stored in commit.files.items() if stored.lfs}

    def commit_count(self, repo_id: str, repo_type: str = "model") -> int:
        repo = self.repo(repo_id, repo_type)
        return 0 if repo is None else len(repo.commits)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a local, in-memory Hugging Face Hub for push/load tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8808)
    parser.add_argument("--lfs", action="store_true",
                        help="answer LFS upload modes (clients need HF_HUB_DISABLE_XET=1)")
    parser.add_argument("--token", action="append", default=[], metavar="TOKEN=USER",
                        help="an access token and the user it belongs to; repeatable (default: hf_local=local)")
    args = parser.parse_args(argv)
    tokens = dict(item.split("=", 1) for item in args.token) if args.token else {"hf_local": "local"}
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    server = HubServer(tokens, host=args.host, port=args.port, lfs=args.lfs)
    logger.info("Local hub at %s (tokens: %s). Use: HF_ENDPOINT=%s HF_TOKEN=<token>", server.url,
                ", ".join(f"{t} -> {u}" for t, u in tokens.items()), server.url)
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._httpd.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
