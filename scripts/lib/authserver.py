#!/usr/bin/env python3
"""Local OAuth2 authorization server for mailroom's tests (`scripts/mailserver start --oauth2`).

Python 3 standard library only. Listens on http://127.0.0.1:6980 (plus MAILSERVER_PORT_OFFSET);
Dovecot's oauth2 passdb asks its /introspect endpoint to validate every token, so a token this
server has not issued, has revoked or has let expire cannot log in to IMAP or SMTP.
State (hashes of tokens, never the tokens; settings) lives in STATE/oauth2/state.json and
survives a restart; counters and outages do not. Log: STATE/log/authserver.log, one line per
request, tokens only as fingerprints (#first 8 hex digits of their SHA-256).

Public endpoints (what a real provider has; answer 503 {"error":"temporarily_unavailable"} while
"down"):
  GET  /.well-known/oauth-authorization-server   RFC 8414 metadata (also /.well-known/openid-configuration)
  POST /device       RFC 8628 device authorization: client_id [client_secret] [scope]
                     -> device_code, user_code (XXXX-XXXX), verification_uri,
                        verification_uri_complete, expires_in, interval
  GET|POST /device/verify   a small HTML page where a person enters the user code and a username
  GET  /authorize    response_type=code client_id redirect_uri state code_challenge
                     code_challenge_method=S256 [scope] [login_hint]; auto-approved as login_hint,
                     else the client's or the global default_user (admin config); answers 302 to
                     redirect_uri?code=…&state=… . redirect_uri must be http on a loopback host
                     (127.0.0.1, [::1] or localhost) with any port (RFC 8252); PKCE S256 is required.
                     Errors after a valid redirect_uri go back as ?error=…&state=…
                     (access_denied when the admin config says "authorize": "deny", login_required
                     when there is no user).
  POST /token        grant_type=urn:ietf:params:oauth:grant-type:device_code device_code client_id
                       -> authorization_pending | slow_down (polled faster than `interval`; the
                          interval then grows by 5 s) | access_denied | expired_token |
                          invalid_grant (unknown or already used code) | tokens
                     grant_type=authorization_code code redirect_uri client_id code_verifier
                     grant_type=refresh_token refresh_token client_id [scope]
                       rotation: the answer carries a new refresh token and the used one is dead;
                       presenting it again -> invalid_grant (counted as outcome "reused").
                     Tokens: {"access_token","token_type":"Bearer","expires_in","refresh_token","scope"}.
                     Client authentication: client_secret in the form or HTTP Basic; required only
                     for a client configured with a secret ("confidential"); any client id is
                     accepted unless require_registered_clients is on.
  POST /revoke       RFC 7009: token [token_type_hint]; 200 even for an unknown token. Revoking a
                     refresh token revokes its whole grant (every access token issued from it).
  POST /introspect   RFC 7662: token -> {"active":true,"username","sub","client_id","scope",
                     "token_type":"Bearer","exp","iat"} for a live access token, else
                     {"active":false} (refresh tokens are never active here: they cannot log in).

Admin API (loopback clients only; JSON bodies; never "down"):
  GET  /admin/health                      {"ok":true,"code_sha256",…}
  GET  /admin/config[?client_id=C]        effective settings (global, or for client C)
  POST /admin/config {KEY: VALUE, …, ["client_id": C]}
        keys: access_token_lifetime (s, default 3600), refresh_token_lifetime (s, 0 = never;
        default 90 days, like Microsoft), device_code_lifetime (600), device_interval (1), code_lifetime (120),
        token_bytes (random bytes per token, 32; raise it to imitate long provider tokens),
        default_user (who /authorize signs in without login_hint), authorize ("approve"|"deny"),
        delay_ms (answer every public request of that client this much later; 0),
        reuse_revokes_grant (a reused refresh token also revokes its grant; false);
        with client_id only: secret (makes the client confidential; null makes it public again);
        global only: require_registered_clients (false).
        With client_id the values apply to that client only, so parallel tests each use their
        own client id and do not disturb each other. null puts a setting back to its default.
        Settings survive a restart (state.json); defaults live in the code.
  POST /admin/device/approve {"user_code": U, "username": N}   (also deny|expire|slow_down
        with {"user_code": U}: the next poll answers access_denied | expired_token | slow_down)
  GET  /admin/device/pending[?client_id=C]   [{"user_code","client_id","scope","expires_in"}]
  POST /admin/revoke {"username": N} or {"client_id": C}   revoke every token -> {"revoked": n}
  POST /admin/expire {"username"|"client_id", "kind": "access"|"refresh"|"all"}   expire now
  GET  /admin/stats[?client_id=C | ?username=N]   {"counts": {…}, "tokens": {"access": n,
        "refresh": n}} where counts has one entry per request kind and one per kind.outcome:
        kinds device, token (every /token), token.device_code, token.authorization_code,
        token.refresh_token, token.other, authorize, revoke, introspect, verify, metadata;
        e.g. "token.refresh_token.ok", "token.refresh_token.reused", "introspect.active",
        "introspect.inactive", "token.device_code.authorization_pending", "*.unavailable".
        A request counts for the client and the user it concerns (introspection: the token's).
  POST /admin/stats/reset [{"client_id": C} | {"username": N}]   (empty body: every counter)
  POST /admin/down [{"client_id": C} | {"username": N}]   simulate an outage: public endpoints
        answer 503 (for that client's / user's requests only, when given)
  POST /admin/up   [{"client_id": C} | {"username": N} | {"all": true}]   end it (empty body:
        the global outage only)

Usage: authserver.py --listen 127.0.0.1:6980 --state-dir DIR --log FILE [--pid-file FILE]
"""
import argparse
import base64
import hashlib
import html
import ipaddress
import json
import os
import secrets
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # no vowels, no look-alikes (RFC 8628 6.1)
MAX_BODY = 1 << 20

GLOBAL_DEFAULTS = {
    "access_token_lifetime": 3600,
    "refresh_token_lifetime": 90 * 86400,
    "device_code_lifetime": 600,
    "device_interval": 1,
    "code_lifetime": 120,
    "token_bytes": 32,
    "default_user": None,
    "authorize": "approve",
    "delay_ms": 0,
    "reuse_revokes_grant": False,
    "require_registered_clients": False,
}
CLIENT_KEYS = set(GLOBAL_DEFAULTS) - {"require_registered_clients"} | {"secret"}
INT_KEYS = {"access_token_lifetime", "refresh_token_lifetime", "device_code_lifetime",
            "device_interval", "code_lifetime", "token_bytes", "delay_ms"}
BOOL_KEYS = {"reuse_revokes_grant", "require_registered_clients"}


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def fp(token):
    """What the log shows of a token: a fingerprint, never the token."""
    return "#" + sha(token)[:8] if token else "-"


def new_token(prefix, nbytes):
    return prefix + secrets.token_urlsafe(max(16, int(nbytes)))


def now():
    return time.time()


class Reply(Exception):
    """A finished answer: raised from anywhere inside a handler."""

    def __init__(self, status, body=None, outcome=None, headers=None):
        super().__init__(outcome or str(status))
        self.status = status
        self.body = body
        self.outcome = outcome
        self.headers = headers or {}


def oauth_error(error, description=None, status=400, outcome=None, headers=None):
    body = {"error": error}
    if description:
        body["error_description"] = description
    return Reply(status, body, outcome or error, headers)


class State:
    """Everything the server knows, guarded by one lock."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.RLock()
        # explicit settings only (defaults stay in the code): {"global": {k: v}, "clients": {id: {k: v}}}
        self.config = {"global": {}, "clients": {}}
        self.tokens = {}   # sha(token) -> record
        self.devices = {}  # sha(device_code) -> record
        self.codes = {}    # sha(code) -> record
        self.counts = {}   # scope ("*", "client:C", "user:U") -> {key: n}
        self.down = set()  # scopes that are down
        self.load()

    # ---- persistence (no counters, no outages)
    def load(self):
        try:
            with open(self.path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            return
        cfg = data.get("config") or {}
        self.config["global"] = {k: v for k, v in (cfg.get("global") or {}).items() if k in GLOBAL_DEFAULTS}
        self.config["clients"] = cfg.get("clients") or {}
        self.tokens = data.get("tokens") or {}
        self.devices = data.get("devices") or {}
        self.codes = data.get("codes") or {}

    def save(self):
        self.prune()
        data = {"config": self.config, "tokens": self.tokens, "devices": self.devices, "codes": self.codes}
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, self.path)

    def prune(self):
        t = now()
        day = 86400
        for key, rec in list(self.tokens.items()):
            if (rec["exp"] and rec["exp"] < t - day) or (rec["state"] != "active" and rec.get("changed", t) < t - day):
                del self.tokens[key]
        for table in (self.devices, self.codes):
            for key, rec in list(table.items()):
                if rec["exp"] < t - 3600:
                    del table[key]

    # ---- settings
    def setting(self, key, client_id=None):
        with self.lock:
            client = self.config["clients"].get(client_id or "", {})
            if key in client:
                return client[key]
            return self.config["global"].get(key, GLOBAL_DEFAULTS.get(key))

    def effective(self, client_id=None):
        with self.lock:
            out = dict(GLOBAL_DEFAULTS, **self.config["global"])
            if client_id is not None:
                out.pop("require_registered_clients", None)
                client = self.config["clients"].get(client_id, {})
                out.update({k: v for k, v in client.items() if k != "secret"})
                out["client_id"] = client_id
                out["registered"] = client_id in self.config["clients"]
                out["confidential"] = bool(client.get("secret"))
            return out

    def configure(self, body):
        client_id = body.pop("client_id", None)
        if client_id is not None and (not isinstance(client_id, str) or not client_id):
            raise Reply(400, {"error": "client_id must be a non-empty string"})
        allowed = CLIENT_KEYS if client_id is not None else set(GLOBAL_DEFAULTS)
        for key, value in body.items():
            if key not in allowed:
                raise Reply(400, {"error": "unknown setting %r%s" % (key, " for a client" if client_id else "")})
            if value is None:
                continue  # back to the default
            if key in INT_KEYS and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise Reply(400, {"error": "%s must be a non-negative integer" % key})
            if key in BOOL_KEYS and not isinstance(value, bool):
                raise Reply(400, {"error": "%s must be true or false" % key})
            if key == "authorize" and value not in ("approve", "deny"):
                raise Reply(400, {"error": "authorize must be approve or deny"})
            if key in ("default_user", "secret") and not isinstance(value, str):
                raise Reply(400, {"error": "%s must be a string" % key})
        with self.lock:
            if client_id is None:
                target = self.config["global"]
            else:
                target = self.config["clients"].setdefault(client_id, {})
            for key, value in body.items():
                if value is None:
                    target.pop(key, None)
                else:
                    target[key] = value
            self.save()
        return self.effective(client_id)

    # ---- counters
    def count(self, kind, outcome, client_id, user):
        scopes = ["*"]
        if client_id:
            scopes.append("client:" + client_id)
        if user:
            scopes.append("user:" + user)
        keys = [kind, "%s.%s" % (kind, outcome)]
        if kind.startswith("token."):
            keys.append("token")
        with self.lock:
            for scope in scopes:
                c = self.counts.setdefault(scope, {})
                for k in keys:
                    c[k] = c.get(k, 0) + 1

    # ---- tokens
    def issue(self, client_id, user, scope, grant=None):
        """Issue an access + refresh token pair (a new grant unless given). Lock held by caller."""
        t = now()
        grant = grant or secrets.token_hex(8)
        nbytes = self.setting("token_bytes", client_id)
        access = new_token("mra_", nbytes)
        refresh = new_token("mrr_", nbytes)
        a_life = self.setting("access_token_lifetime", client_id)
        r_life = self.setting("refresh_token_lifetime", client_id)
        base = {"user": user, "client_id": client_id, "scope": scope, "grant": grant, "iat": t,
                "state": "active"}
        self.tokens[sha(access)] = dict(base, kind="access", exp=t + a_life, fp=fp(access))
        self.tokens[sha(refresh)] = dict(base, kind="refresh", exp=(t + r_life) if r_life else 0, fp=fp(refresh))
        self.save()
        body = {"access_token": access, "token_type": "Bearer", "expires_in": a_life,
                "refresh_token": refresh, "scope": scope}
        return body

    def live(self, rec):
        return rec["state"] == "active" and (not rec["exp"] or rec["exp"] > now())

    def revoke_where(self, pred, state="revoked"):
        n = 0
        with self.lock:
            for rec in self.tokens.values():
                if rec["state"] == "active" and pred(rec):
                    rec["state"] = state
                    rec["changed"] = now()
                    n += 1
            if n:
                self.save()
        return n


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mailroom-test-authserver/1"

    # quiet: our own log line per request instead
    def log_message(self, fmt, *args):
        pass

    @property
    def st(self):
        return self.server.state

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_HEAD(self):
        self.dispatch("HEAD")

    # ---- plumbing
    def read_body(self):
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = -1
        if n < 0 or n > MAX_BODY:
            self.close_connection = True
            raise Reply(413, {"error": "invalid_request", "error_description": "body too large"}, "too_large")
        return self.rfile.read(n) if n else b""

    def form(self, body):
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if body and ctype == "application/json":
            try:
                data = json.loads(body)
            except ValueError:
                raise oauth_error("invalid_request", "bad JSON")
            if not isinstance(data, dict):
                raise oauth_error("invalid_request", "JSON object expected")
            return {k: str(v) for k, v in data.items() if v is not None}
        try:
            pairs = urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise oauth_error("invalid_request", "body is not UTF-8")
        out = {}
        for k, v in pairs:
            if k in out:
                raise oauth_error("invalid_request", "parameter %s given twice" % k)
            out[k] = v
        return out

    def send(self, status, body, headers=None, log=None):
        headers = dict(headers or {})
        if body is None:
            data = b""
        elif isinstance(body, (bytes, str)):
            data = body.encode() if isinstance(body, str) else body
            headers.setdefault("Content-Type", "text/html; charset=utf-8")
        else:
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        self.send_response(status)
        headers.setdefault("Cache-Control", "no-store")
        headers.setdefault("Pragma", "no-cache")
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        if log is not None:
            self.server.log(log)

    def dispatch(self, method):
        started = now()
        url = urllib.parse.urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        self.info = {"client": None, "user": None, "tok": []}
        kind = "admin" if path.startswith("/admin") else None
        try:
            # read the body first: an answer that leaves it unread would break keep-alive
            body = self.read_body()
            if kind == "admin":
                if not self.loopback():
                    raise Reply(403, {"error": "admin API is for loopback clients only"}, "forbidden")
                self.admin(method, path, query, body)
                raise Reply(404, {"error": "no such admin endpoint"}, "not_found")
            kind = self.kind_of(method, path, query)
            if kind is None:
                raise Reply(404, {"error": "not_found"}, "not_found")
            if "*" in self.st.down:
                raise self.unavailable()
            getattr(self, "ep_" + kind.split(".")[0])(method, path, query, body, kind)
            raise Reply(500, {"error": "server_error"}, "server_error")
        except Reply as r:
            outcome = r.outcome or ("ok" if r.status < 400 else str(r.status))
            if kind and kind != "admin":
                self.st.count(self.info.get("kind", kind), outcome, self.info["client"], self.info["user"])
            line = "%s %s kind=%s client=%s user=%s outcome=%s status=%d ms=%d%s" % (
                method, path,
                self.info.get("kind", kind), self.info["client"] or "-", self.info["user"] or "-",
                outcome, r.status, int((now() - started) * 1000),
                "".join(" tok=" + t for t in self.info["tok"]))
            self.send(r.status, r.body, r.headers, log=line)

    def loopback(self):
        try:
            return ipaddress.ip_address(self.client_address[0]).is_loopback
        except ValueError:
            return False

    def kind_of(self, method, path, query):
        if path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration") and method in ("GET", "HEAD"):
            return "metadata"
        table = {("POST", "/device"): "device", ("GET", "/device/verify"): "verify",
                 ("POST", "/device/verify"): "verify", ("GET", "/authorize"): "authorize",
                 ("POST", "/token"): "token", ("POST", "/revoke"): "revoke",
                 ("POST", "/introspect"): "introspect"}
        return table.get((method, path))

    def unavailable(self):
        return Reply(503, {"error": "temporarily_unavailable",
                           "error_description": "the test authorization server is down (admin /admin/down)"},
                     "unavailable", {"Retry-After": "1"})

    def gate(self, client_id=None, user=None):
        """Outage and delay for requests that concern client_id / user."""
        if client_id:
            self.info["client"] = client_id
        if user:
            self.info["user"] = user
        down = self.st.down
        c, u = self.info["client"], self.info["user"]
        if "*" in down or (c and "client:" + c in down) or (u and "user:" + u in down):
            raise self.unavailable()
        delay = self.st.setting("delay_ms", c)
        if delay and not self.info.get("delayed"):
            self.info["delayed"] = True
            time.sleep(delay / 1000.0)

    def base_url(self):
        host, port = self.server.server_address[:2]
        return "http://%s:%d" % (host, port)

    def client_auth(self, form, require_id=True):
        """Authenticate the client (RFC 6749 2.3): returns its id."""
        basic_id = basic_secret = None
        auth = self.headers.get("Authorization") or ""
        if auth[:6].lower() == "basic ":
            try:
                raw = base64.b64decode(auth[6:].strip()).decode()
                basic_id, _, basic_secret = raw.partition(":")
                basic_id = urllib.parse.unquote_plus(basic_id)
                basic_secret = urllib.parse.unquote_plus(basic_secret)
            except (ValueError, UnicodeDecodeError):
                raise oauth_error("invalid_client", "bad Basic authorization", 401, headers={"WWW-Authenticate": "Basic"})
        client_id = form.get("client_id") or basic_id
        if not client_id:
            if not require_id:
                return None
            raise oauth_error("invalid_request", "client_id missing")
        if basic_id and basic_id != client_id:
            raise oauth_error("invalid_client", "client_id differs from the Basic user", 401, headers={"WWW-Authenticate": "Basic"})
        self.gate(client_id)
        with self.st.lock:
            registered = client_id in self.st.config["clients"]
            need = self.st.config["clients"].get(client_id, {}).get("secret")
        require_reg = self.st.setting("require_registered_clients")
        if require_reg and not registered:
            raise oauth_error("invalid_client", "unknown client", 401, headers={"WWW-Authenticate": "Basic"})
        if need:
            given = basic_secret if basic_secret is not None else form.get("client_secret")
            if given is None or not secrets.compare_digest(given.encode(), need.encode()):
                raise oauth_error("invalid_client", "client authentication failed", 401, headers={"WWW-Authenticate": "Basic"})
        return client_id

    # ---- public endpoints
    def ep_metadata(self, method, path, query, body, kind):
        b = self.base_url()
        raise Reply(200, {
            "issuer": b,
            "authorization_endpoint": b + "/authorize",
            "token_endpoint": b + "/token",
            "device_authorization_endpoint": b + "/device",
            "revocation_endpoint": b + "/revoke",
            "introspection_endpoint": b + "/introspect",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token", DEVICE_GRANT],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
        })

    def ep_device(self, method, path, query, body, kind):
        form = self.form(body)
        client_id = self.client_auth(form)
        scope = form.get("scope", "")
        st = self.st
        device_code = new_token("mrd_", 32)
        with st.lock:
            while True:
                raw = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
                user_code = raw[:4] + "-" + raw[4:]
                if not any(d["user_code"] == user_code for d in st.devices.values()):
                    break
            life = st.setting("device_code_lifetime", client_id)
            interval = st.setting("device_interval", client_id)
            st.devices[sha(device_code)] = {
                "user_code": user_code, "client_id": client_id, "scope": scope, "exp": now() + life,
                "interval": interval, "status": "pending", "user": None, "last_poll": 0, "force": None,
                "fp": fp(device_code)}
            st.save()
        self.info["tok"].append("issued:" + fp(device_code))
        verify = self.base_url() + "/device/verify"
        raise Reply(200, {
            "device_code": device_code, "user_code": user_code, "verification_uri": verify,
            "verification_uri_complete": verify + "?user_code=" + user_code,
            "expires_in": life, "interval": interval})

    def ep_verify(self, method, path, query, body, kind):
        self.gate()
        msg = ""
        code = query.get("user_code", "")
        if method == "POST":
            form = self.form(body)
            code, user = form.get("user_code", ""), form.get("username", "").strip()
            try:
                self.server.device_decide(code, "approve", user)
                raise Reply(200, "<p>Approved for %s. You can close this page.</p>" % html.escape(user))
            except Reply as r:
                if r.status == 200:
                    raise
                msg = "<p><b>%s</b></p>" % html.escape(str((r.body or {}).get("error", r.status)))
        raise Reply(200, """<!doctype html><title>Device sign-in (mailroom test server)</title>
<h1>Device sign-in</h1>%s<form method=post>
<label>Code <input name=user_code value="%s"></label>
<label>Sign in as <input name=username placeholder="alice@example.test"></label>
<button>Approve</button></form>""" % (msg, html.escape(code)))

    def redirect_error(self, redirect_uri, state, error, description):
        params = {"error": error, "error_description": description}
        if state is not None:
            params["state"] = state
        raise Reply(302, None, error, {"Location": add_query(redirect_uri, params)})

    def ep_authorize(self, method, path, query, body, kind):
        client_id = query.get("client_id")
        redirect_uri = query.get("redirect_uri", "")
        state = query.get("state")
        if not client_id:
            raise Reply(400, {"error": "invalid_request", "error_description": "client_id missing"}, "invalid_request")
        self.gate(client_id)
        if not loopback_redirect(redirect_uri):
            raise Reply(400, {"error": "invalid_request",
                              "error_description": "redirect_uri must be http://127.0.0.1:PORT/…, http://[::1]:PORT/… or http://localhost:PORT/… (RFC 8252)"},
                        "invalid_redirect_uri")
        with self.st.lock:
            if self.st.setting("require_registered_clients") and client_id not in self.st.config["clients"]:
                raise Reply(400, {"error": "unauthorized_client", "error_description": "unknown client"}, "unauthorized_client")
        if query.get("response_type") != "code":
            self.redirect_error(redirect_uri, state, "unsupported_response_type", "only response_type=code")
        challenge = query.get("code_challenge", "")
        if query.get("code_challenge_method") != "S256" or not (43 <= len(challenge) <= 128):
            self.redirect_error(redirect_uri, state, "invalid_request", "PKCE with code_challenge_method=S256 is required")
        user = (query.get("login_hint") or "").strip() or self.st.setting("default_user", client_id)
        if self.st.setting("authorize", client_id) == "deny":
            self.info["user"] = user
            self.redirect_error(redirect_uri, state, "access_denied", "the user denied the request")
        if not user:
            self.redirect_error(redirect_uri, state, "login_required",
                                "no user: pass login_hint or set default_user through /admin/config")
        self.gate(client_id, user)
        code = new_token("mrc_", 32)
        with self.st.lock:
            self.st.codes[sha(code)] = {
                "client_id": client_id, "redirect_uri": redirect_uri, "challenge": challenge,
                "user": user, "scope": query.get("scope", ""), "exp": now() + self.st.setting("code_lifetime", client_id),
                "used": False, "grant": None, "fp": fp(code)}
            self.st.save()
        self.info["tok"].append("issued:" + fp(code))
        params = {"code": code}
        if state is not None:
            params["state"] = state
        location = add_query(redirect_uri, params)
        raise Reply(302, '<p>Signed in as %s: <a href="%s">continue</a></p>' % (html.escape(user), html.escape(location)),
                    "ok", {"Location": location})

    def ep_token(self, method, path, query, body, kind):
        form = self.form(body)
        grant_type = form.get("grant_type", "")
        sub = {DEVICE_GRANT: "device_code", "authorization_code": "authorization_code",
               "refresh_token": "refresh_token"}.get(grant_type, "other")
        self.info["kind"] = "token." + sub
        client_id = self.client_auth(form)
        if sub == "other":
            raise oauth_error("unsupported_grant_type", "grant_type %r" % grant_type)
        getattr(self, "grant_" + sub)(form, client_id)

    def grant_device_code(self, form, client_id):
        code = form.get("device_code", "")
        if not code:
            raise oauth_error("invalid_request", "device_code missing")
        self.info["tok"].append(fp(code))
        st = self.st
        with st.lock:
            rec = st.devices.get(sha(code))
            if rec is None or rec["client_id"] != client_id or rec["status"] == "used":
                raise oauth_error("invalid_grant", "unknown or used device_code")
            self.info["user"] = rec["user"]
        self.gate(client_id, rec["user"])
        with st.lock:
            t = now()
            if rec["status"] == "used":
                raise oauth_error("invalid_grant", "unknown or used device_code")
            if rec["exp"] <= t or rec["force"] == "expire":
                raise oauth_error("expired_token", "the device code expired")
            if rec["status"] == "denied":
                raise oauth_error("access_denied", "the user denied the request")
            if rec["status"] == "pending":
                too_fast = rec["last_poll"] and t - rec["last_poll"] < rec["interval"] - 0.2
                rec["last_poll"] = t
                if rec["force"] == "slow_down" or too_fast:
                    rec["force"] = None
                    rec["interval"] += 5
                    raise oauth_error("slow_down", "poll every %d s" % rec["interval"])
                raise oauth_error("authorization_pending", "waiting for the user")
            # approved
            rec["status"] = "used"
            tokens = st.issue(client_id, rec["user"], rec["scope"])
        self.info["tok"] += ["issued:" + fp(tokens["access_token"]), "issued:" + fp(tokens["refresh_token"])]
        raise Reply(200, tokens, "ok")

    def grant_authorization_code(self, form, client_id):
        code = form.get("code", "")
        verifier = form.get("code_verifier", "")
        if not code:
            raise oauth_error("invalid_request", "code missing")
        self.info["tok"].append(fp(code))
        st = self.st
        with st.lock:
            rec = st.codes.get(sha(code))
            if rec is None or rec["client_id"] != client_id:
                raise oauth_error("invalid_grant", "unknown authorization code")
            self.info["user"] = rec["user"]
        self.gate(client_id, rec["user"])
        with st.lock:
            if rec["used"]:
                # RFC 6749 4.1.2: a code used twice revokes what it gave
                grant = rec["grant"]
                if grant:
                    st.revoke_where(lambda t: t["grant"] == grant)
                raise oauth_error("invalid_grant", "authorization code already used", outcome="reused")
            if rec["exp"] <= now():
                raise oauth_error("invalid_grant", "authorization code expired", outcome="expired")
            if form.get("redirect_uri", "") != rec["redirect_uri"]:
                raise oauth_error("invalid_grant", "redirect_uri differs from the one in /authorize")
            if not verifier:
                raise oauth_error("invalid_request", "code_verifier missing (PKCE)")
            calc = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if not secrets.compare_digest(calc, rec["challenge"]):
                raise oauth_error("invalid_grant", "code_verifier does not match the code_challenge", outcome="pkce_mismatch")
            rec["used"] = True
            tokens = st.issue(client_id, rec["user"], rec["scope"])
            rec["grant"] = st.tokens[sha(tokens["access_token"])]["grant"]
            st.save()
        self.info["tok"] += ["issued:" + fp(tokens["access_token"]), "issued:" + fp(tokens["refresh_token"])]
        raise Reply(200, tokens, "ok")

    def grant_refresh_token(self, form, client_id):
        token = form.get("refresh_token", "")
        if not token:
            raise oauth_error("invalid_request", "refresh_token missing")
        self.info["tok"].append(fp(token))
        st = self.st
        with st.lock:
            rec = st.tokens.get(sha(token))
            if rec is None or rec["kind"] != "refresh" or rec["client_id"] != client_id:
                raise oauth_error("invalid_grant", "unknown refresh token")
            self.info["user"] = rec["user"]
        self.gate(client_id, rec["user"])
        with st.lock:
            if rec["state"] == "rotated":
                if st.setting("reuse_revokes_grant", client_id):
                    grant = rec["grant"]
                    st.revoke_where(lambda t: t["grant"] == grant)
                raise oauth_error("invalid_grant", "refresh token already used (rotated)", outcome="reused")
            if rec["state"] == "revoked":
                raise oauth_error("invalid_grant", "refresh token revoked", outcome="revoked")
            if rec["exp"] and rec["exp"] <= now():
                raise oauth_error("invalid_grant", "refresh token expired", outcome="expired")
            rec["state"] = "rotated"
            rec["changed"] = now()
            scope = form.get("scope") or rec["scope"]
            tokens = st.issue(client_id, rec["user"], scope, grant=rec["grant"])
        self.info["tok"] += ["issued:" + fp(tokens["access_token"]), "issued:" + fp(tokens["refresh_token"])]
        raise Reply(200, tokens, "ok")

    def ep_revoke(self, method, path, query, body, kind):
        form = self.form(body)
        client_id = self.client_auth(form)
        token = form.get("token", "")
        if not token:
            raise oauth_error("invalid_request", "token missing")
        self.info["tok"].append(fp(token))
        st = self.st
        with st.lock:
            rec = st.tokens.get(sha(token))
        if rec is None:
            raise Reply(200, None, "unknown")
        self.gate(client_id, rec["user"])
        if rec["client_id"] != client_id:
            raise oauth_error("unauthorized_client", "the token was issued to another client")
        if rec["kind"] == "refresh":
            grant = rec["grant"]
            n = st.revoke_where(lambda t: t["grant"] == grant)
        else:
            n = st.revoke_where(lambda t: t is rec)
        raise Reply(200, None, "ok" if n else "inactive")

    def ep_introspect(self, method, path, query, body, kind):
        form = self.form(body)
        token = form.get("token", "")
        if not token:
            raise oauth_error("invalid_request", "token missing")
        self.info["tok"].append(fp(token))
        st = self.st
        with st.lock:
            rec = st.tokens.get(sha(token))
        if rec is None:
            raise Reply(200, {"active": False}, "inactive")
        self.gate(rec["client_id"], rec["user"])
        if rec["kind"] != "access" or not st.live(rec):
            raise Reply(200, {"active": False}, "inactive")
        # token_type must be "Bearer": Dovecot fails the login on anything else. No expires_in:
        # Dovecot parses it as an unsigned number.
        raise Reply(200, {"active": True, "username": rec["user"], "sub": rec["user"],
                          "client_id": rec["client_id"], "scope": rec["scope"], "token_type": "Bearer",
                          "exp": int(rec["exp"]), "iat": int(rec["iat"])}, "active")

    # ---- admin
    def admin(self, method, path, query, raw):
        st = self.st
        body = {}
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                try:
                    body = dict(urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True))
                except UnicodeDecodeError:
                    body = None
            if not isinstance(body, dict):
                raise Reply(400, {"error": "JSON object expected"})
        scope = scope_of(body) if method == "POST" else scope_of(query)
        if method == "GET" and path == "/admin/health":
            raise Reply(200, {"ok": True, "pid": os.getpid(), "code_sha256": self.server.code_sha,
                              "url": self.base_url(), "down": sorted(st.down)})
        if path == "/admin/config":
            if method == "GET":
                raise Reply(200, st.effective(query.get("client_id")))
            if method == "POST":
                raise Reply(200, st.configure(dict(body)))
        if method == "POST" and path.startswith("/admin/device/"):
            action = path[len("/admin/device/"):]
            if action not in ("approve", "deny", "expire", "slow_down"):
                raise Reply(404, {"error": "no such admin endpoint"})
            rec = self.server.device_decide(str(body.get("user_code", "")), action, body.get("username"))
            raise Reply(200, {"ok": True, "user_code": rec["user_code"], "client_id": rec["client_id"]})
        if method == "GET" and path == "/admin/device/pending":
            t = now()
            with st.lock:
                out = [{"user_code": d["user_code"], "client_id": d["client_id"], "scope": d["scope"],
                        "expires_in": int(d["exp"] - t)}
                       for d in st.devices.values()
                       if d["status"] == "pending" and d["exp"] > t
                       and query.get("client_id") in (None, d["client_id"])]
            raise Reply(200, out)
        if method == "POST" and path in ("/admin/revoke", "/admin/expire"):
            if scope == "*":
                raise Reply(400, {"error": "give username or client_id"})
            what, _, name = scope.partition(":")
            field = "user" if what == "user" else "client_id"
            if path == "/admin/revoke":
                n = st.revoke_where(lambda t: t[field] == name)
                raise Reply(200, {"revoked": n})
            kind = body.get("kind", "access")
            if kind not in ("access", "refresh", "all"):
                raise Reply(400, {"error": "kind must be access, refresh or all"})
            n = 0
            with st.lock:
                for rec in st.tokens.values():
                    if rec[field] == name and rec["state"] == "active" and kind in ("all", rec["kind"]) and st.live(rec):
                        rec["exp"] = now() - 1
                        n += 1
                st.save()
            raise Reply(200, {"expired": n})
        if method == "GET" and path == "/admin/stats":
            what, _, name = scope.partition(":")
            field = {"user": "user", "client": "client_id"}.get(what)
            with st.lock:
                counts = dict(st.counts.get(scope, {}))
                live = [r for r in st.tokens.values() if st.live(r) and (field is None or r[field] == name)]
            raise Reply(200, {"scope": scope, "counts": counts,
                              "tokens": {"access": sum(r["kind"] == "access" for r in live),
                                         "refresh": sum(r["kind"] == "refresh" for r in live)}})
        if method == "POST" and path == "/admin/stats/reset":
            with st.lock:
                if scope == "*":
                    st.counts.clear()
                else:
                    st.counts.pop(scope, None)
            raise Reply(200, {"ok": True})
        if method == "POST" and path == "/admin/down":
            with st.lock:
                st.down.add(scope)
            self.server.log("admin: down %s" % scope)
            raise Reply(200, {"down": sorted(st.down)})
        if method == "POST" and path == "/admin/up":
            with st.lock:
                if body.get("all"):
                    st.down.clear()
                else:
                    st.down.discard(scope)
            self.server.log("admin: up %s" % ("all" if body.get("all") else scope))
            raise Reply(200, {"down": sorted(st.down)})


def scope_of(params):
    if params.get("client_id"):
        return "client:" + str(params["client_id"])
    if params.get("username"):
        return "user:" + str(params["username"])
    return "*"


def add_query(uri, params):
    parts = urllib.parse.urlsplit(uri)
    q = parts.query + ("&" if parts.query else "") + urllib.parse.urlencode(params)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, q, ""))


def loopback_redirect(uri):
    try:
        parts = urllib.parse.urlsplit(uri)
        port = parts.port
    except ValueError:
        return False
    return (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "::1", "localhost")
            and port is not None and not parts.fragment)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, state, logf, code_sha):
        self.state = state
        self.logf = logf
        self.code_sha = code_sha
        self.log_lock = threading.Lock()
        super().__init__(addr, Handler)

    def log(self, line):
        with self.log_lock:
            self.logf.write(time.strftime("%Y-%m-%dT%H:%M:%SZ ", time.gmtime()) + line + "\n")
            self.logf.flush()

    def device_decide(self, user_code, action, username=None):
        norm = "".join(ch for ch in user_code.upper() if ch.isalnum())
        norm = norm[:4] + "-" + norm[4:] if len(norm) == 8 else norm
        st = self.state
        with st.lock:
            rec = next((d for d in st.devices.values() if d["user_code"] == norm), None)
            if rec is None:
                raise Reply(404, {"error": "no such user_code"})
            if rec["status"] != "pending":
                raise Reply(409, {"error": "user_code already %s" % rec["status"]})
            if action == "approve":
                if not isinstance(username, str) or not username.strip() or any(c.isspace() for c in username.strip()):
                    raise Reply(400, {"error": "username required"})
                rec["status"], rec["user"] = "approved", username.strip()
            elif action == "deny":
                rec["status"] = "denied"
            elif action == "expire":
                rec["force"] = "expire"
            elif action == "slow_down":
                rec["force"] = "slow_down"
            st.save()
        self.log("admin: device %s %s%s" % (norm, action, " as " + username.strip() if action == "approve" else ""))
        return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", default="127.0.0.1:6980")
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--pid-file")
    a = ap.parse_args()
    host, _, port = a.listen.rpartition(":")
    os.makedirs(a.state_dir, mode=0o700, exist_ok=True)
    with open(os.path.abspath(__file__), "rb") as f:
        code_sha = hashlib.sha256(f.read()).hexdigest()
    logf = open(a.log, "a", buffering=1)
    state = State(os.path.join(a.state_dir, "state.json"))
    try:
        server = Server((host, int(port)), state, logf, code_sha)
    except OSError as e:
        print("authserver: cannot listen on %s: %s" % (a.listen, e), file=sys.stderr)
        sys.exit(1)
    if a.pid_file:
        with open(a.pid_file + ".tmp", "w") as f:
            f.write("%d\n" % os.getpid())
        os.replace(a.pid_file + ".tmp", a.pid_file)

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.log("started pid %d on http://%s code %s" % (os.getpid(), a.listen, code_sha[:12]))
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        with state.lock:
            state.save()
        server.log("stopped")
        if a.pid_file:
            try:
                os.unlink(a.pid_file)
            except OSError:
                pass


if __name__ == "__main__":
    main()
