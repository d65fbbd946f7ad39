#!/usr/bin/env python3
"""Smoke test of the oauth2 profile (used by `scripts/mailserver selftest --oauth2`).

Drives the local authorization server the way mailroom's tests will: a device flow approved
through the admin API, authorization code + PKCE with a loopback redirect, refresh with rotation,
revocation, an outage. Logs in over IMAP with XOAUTH2 and OAUTHBEARER (implicit TLS, STARTTLS,
the OAUTHBEARER-only port), sends over both submission ports, checks delivery, and that no token
reached a log. Uses its own client id, so the counters and the outage it causes concern only its
own requests (other tests may run meanwhile). Standard library only; exit status 0 when all passed.
"""
import argparse
import base64
import hashlib
import imaplib
import json
import os
import secrets
import smtplib
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

FAILS = []
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
USER = "selftest-oauth@example.test"
RCPT = "selftest-rcpt@example.test"


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        FAILS.append(what)
    return cond


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Auth:
    def __init__(self, base, client_id):
        self.base = base
        self.client_id = client_id
        self.opener = urllib.request.build_opener(NoRedirect)

    def call(self, method, path, form=None, js=None):
        data, headers = None, {}
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if js is not None:
            data = json.dumps(js).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with self.opener.open(req, timeout=30) as r:
                status, body, hdrs = r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            status, body, hdrs = e.code, e.read(), e.headers
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = body.decode(errors="replace")
        return status, parsed, hdrs

    def token(self, **form):
        form.setdefault("client_id", self.client_id)
        return self.call("POST", "/token", form=form)

    def admin(self, path, **js):
        return self.call("POST", "/admin/" + path, js=js)


def xoauth2(user, token):
    return "user=%s\x01auth=Bearer %s\x01\x01" % (user, token)


def oauthbearer(user, token, port):
    return "n,a=%s,\x01host=127.0.0.1\x01port=%d\x01auth=Bearer %s\x01\x01" % (user, port, token)


def sasl_payload(mech, user, token, port):
    return xoauth2(user, token) if mech == "XOAUTH2" else oauthbearer(user, token, port)


def imap_connect(port, ctx, starttls):
    if starttls:
        m = imaplib.IMAP4("127.0.0.1", port, timeout=30)
        m.starttls(ssl_context=ctx)
        return m
    return imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx, timeout=30)


def imap_login(port, ctx, mech, user, token, starttls=False, keep=False):
    """AUTHENTICATE; returns (ok, server text, connection-or-None)."""
    m = imap_connect(port, ctx, starttls)
    first = [True]

    def answer(challenge):
        if first[0]:
            first[0] = False
            return sasl_payload(mech, user, token, port).encode()
        # a failure arrives as a JSON challenge; the client ends the exchange (RFC 7628 3.2.3)
        return b"\x01" if mech == "OAUTHBEARER" else b""

    try:
        typ, data = m.authenticate(mech, answer)
        ok, text = typ == "OK", b" ".join(data).decode(errors="replace")
    except imaplib.IMAP4.error as e:
        ok, text = False, str(e)
    if ok and keep:
        return ok, text, m
    try:
        m.logout()
    except Exception:
        pass
    return ok, text, None


def caps_before_login(port, ctx, starttls=False):
    m = imap_connect(port, ctx, starttls)
    caps = {c.upper() for c in m.capabilities}
    m.logout()
    return caps


def smtp_send(port, ctx, mech, user, token, rcpt, msgid, challenges=None):
    """STARTTLS, AUTH with an initial response, send; returns (code, text, ehlo auth list).
    challenges (a list) receives the server's 334 challenges after the initial response."""
    s = smtplib.SMTP("127.0.0.1", port, timeout=30)
    try:
        s.starttls(context=ctx)
        s.ehlo()
        offered = (s.esmtp_features.get("auth") or "").upper().split()
        first = [True]

        def answer(challenge=None):
            if first[0]:
                first[0] = False
                return sasl_payload(mech, user, token, port)
            if challenges is not None:
                challenges.append(challenge)
            return "\x01" if mech == "OAUTHBEARER" else ""

        try:
            code, resp = s.auth(mech, answer, initial_response_ok=True)
        except smtplib.SMTPAuthenticationError as e:
            return e.smtp_code, e.smtp_error.decode(errors="replace"), offered
        except smtplib.SMTPException as e:
            return 0, str(e), offered
        msg = ("From: %s\r\nTo: %s\r\nSubject: oauth2 selftest %s\r\nMessage-ID: %s\r\n\r\nhello\r\n"
               % (user, rcpt, mech, msgid))
        s.sendmail(user, [rcpt], msg)
        return code, resp.decode(errors="replace"), offered
    finally:
        try:
            s.quit()
        except Exception:
            pass


def find(conn, msgid, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        conn.select("INBOX", readonly=True)
        typ, data = conn.search(None, "HEADER", "Message-ID", msgid)
        if data and data[0].split():
            return True
        time.sleep(0.2)
    return False


def pkce_pair():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ca", required=True)
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--log-dir", help="directory whose files must not contain a token")
    a = ap.parse_args()
    o = a.offset
    ctx = ssl.create_default_context(cafile=a.ca)
    IMAPS, IMAP, BEARER_IMAPS = 6993 + o, 6143 + o, 6994 + o
    SUB, BEARER_SUB = 6587 + o, 6588 + o
    client_id = "selftest-" + uuid.uuid4().hex[:10]
    auth = Auth("http://127.0.0.1:%d" % (6980 + o), client_id)
    issued = []  # every token we saw, for the log check

    st, meta, _ = auth.call("GET", "/.well-known/oauth-authorization-server")
    check(st == 200 and meta.get("device_authorization_endpoint", "").endswith("/device"),
          "authserver %d: metadata names the device, token, revoke and introspect endpoints" % (6980 + o))

    # ---- device flow, approved by the admin API
    st, dev, _ = auth.call("POST", "/device", form={"client_id": client_id, "scope": "imap smtp"})
    check(st == 200 and dev.get("user_code") and dev.get("interval") is not None, "device authorization: user_code %s" % (dev or {}).get("user_code"))
    st, body, _ = auth.token(grant_type=DEVICE_GRANT, device_code=dev["device_code"])
    check(st == 400 and body.get("error") == "authorization_pending", "device poll before approval: authorization_pending")
    st, body, _ = auth.token(grant_type=DEVICE_GRANT, device_code=dev["device_code"])
    check(st == 400 and body.get("error") == "slow_down", "device poll faster than the interval: slow_down")
    st, pending, _ = auth.call("GET", "/admin/device/pending?client_id=" + client_id)
    check(st == 200 and [p["user_code"] for p in pending] == [dev["user_code"]], "admin: the code is listed as pending")
    st, body, _ = auth.admin("device/approve", user_code=dev["user_code"], username=USER)
    check(st == 200, "admin: device code approved for %s" % USER)
    st, tok, _ = auth.token(grant_type=DEVICE_GRANT, device_code=dev["device_code"])
    ok = check(st == 200 and tok.get("token_type") == "Bearer" and tok.get("access_token") and tok.get("refresh_token"),
               "device poll after approval: access and refresh token")
    if not ok:
        print("selftest-oauth2: FAILED (no token, stopping)")
        sys.exit(1)
    issued += [dev["device_code"], tok["access_token"], tok["refresh_token"]]
    access = tok["access_token"]
    st, body, _ = auth.token(grant_type=DEVICE_GRANT, device_code=dev["device_code"])
    check(st == 400 and body.get("error") == "invalid_grant", "a used device code: invalid_grant")
    st, body, _ = auth.call("POST", "/introspect", form={"token": access})
    check(body.get("active") is True and body.get("username") == USER, "introspection: active, username %s" % USER)

    # ---- IMAP
    caps = caps_before_login(IMAPS, ctx)
    check({"AUTH=XOAUTH2", "AUTH=OAUTHBEARER", "SASL-IR"} <= caps, "imaps %d: AUTH=XOAUTH2 AUTH=OAUTHBEARER SASL-IR offered" % IMAPS)
    for port, starttls in ((IMAPS, False), (IMAP, True)):
        for mech in ("XOAUTH2", "OAUTHBEARER"):
            ok, text, _ = imap_login(port, ctx, mech, USER, access, starttls)
            check(ok, "imap %d%s: %s login" % (port, " (STARTTLS)" if starttls else "", mech) + ("" if ok else ": " + text))
    caps = caps_before_login(BEARER_IMAPS, ctx)
    check("AUTH=OAUTHBEARER" in caps and "AUTH=XOAUTH2" not in caps, "imaps %d: offers OAUTHBEARER only" % BEARER_IMAPS)
    ok, text, _ = imap_login(BEARER_IMAPS, ctx, "OAUTHBEARER", USER, access)
    check(ok, "imaps %d: OAUTHBEARER login" % BEARER_IMAPS + ("" if ok else ": " + text))
    ok, text, _ = imap_login(BEARER_IMAPS, ctx, "XOAUTH2", USER, access)
    check(not ok, "imaps %d: XOAUTH2 refused (%s)" % (BEARER_IMAPS, text.strip()[:70]))
    ok, text, _ = imap_login(IMAPS, ctx, "XOAUTH2", "alice@example.test", access)
    check(not ok and "AUTHENTICATIONFAILED" in text, "imaps %d: a token used for another user is refused" % IMAPS)
    m = imap_connect(IMAPS, ctx, False)
    try:
        m.login(USER, "secret")
        refused = False
    except imaplib.IMAP4.error:
        refused = True
    check(refused, "imaps %d: password LOGIN refused (OAuth2 only)" % IMAPS)
    try:
        m.logout()
    except Exception:
        pass

    # ---- authorization code + PKCE with a loopback redirect, for the recipient
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(8)
    redirect = "http://127.0.0.1:%d/callback" % (40000 + secrets.randbelow(20000))
    q = urllib.parse.urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": redirect,
                                "scope": "imap smtp", "state": state, "code_challenge": challenge,
                                "code_challenge_method": "S256", "login_hint": RCPT})
    st, _, hdrs = auth.call("GET", "/authorize?" + q)
    loc = hdrs.get("Location", "")
    back = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(loc).query))
    check(st == 302 and loc.startswith(redirect + "?") and back.get("state") == state and back.get("code"),
          "authorize: 302 to the loopback redirect with code and state")
    code = back.get("code", "")
    issued.append(code)
    st, body, _ = auth.token(grant_type="authorization_code", code=code, redirect_uri=redirect, code_verifier=verifier + "x")
    check(st == 400 and body.get("error") == "invalid_grant", "code exchange with a wrong code_verifier: invalid_grant")
    st, rtok, _ = auth.token(grant_type="authorization_code", code=code, redirect_uri=redirect, code_verifier=verifier)
    check(st == 200 and rtok.get("access_token"), "code exchange with the right code_verifier: tokens for %s" % RCPT)
    rtok = rtok or {}
    issued += [rtok.get("access_token", ""), rtok.get("refresh_token", "")]
    ok, text, rconn = imap_login(IMAPS, ctx, "XOAUTH2", RCPT, rtok.get("access_token", ""), keep=True)
    check(ok, "imaps %d: %s logs in with the code-flow token" % (IMAPS, RCPT))

    # ---- SMTP
    sent = []
    for port, mech in ((SUB, "XOAUTH2"), (SUB, "OAUTHBEARER"), (BEARER_SUB, "OAUTHBEARER")):
        msgid = "<selftest-oauth2-%s@example.test>" % uuid.uuid4().hex
        code_, text, offered = smtp_send(port, ctx, mech, USER, access, RCPT, msgid)
        check(code_ == 235, "submission %d: AUTH %s accepted (%d %s)" % (port, mech, code_, text.strip()[:40]))
        sent.append((port, mech, msgid))
        if port == SUB and mech == "XOAUTH2":
            check({"XOAUTH2", "OAUTHBEARER"} <= set(offered), "submission %d: EHLO offers %s" % (port, " ".join(offered)))
        if port == BEARER_SUB:
            check(offered == ["OAUTHBEARER"], "submission %d: EHLO offers %s only" % (port, " ".join(offered)))
    code_, text, _ = smtp_send(BEARER_SUB, ctx, "XOAUTH2", USER, access, RCPT, "<x@example.test>")
    check(code_ != 235, "submission %d: AUTH XOAUTH2 refused (%d %s)" % (BEARER_SUB, code_, text.strip()[:50]))
    if rconn is not None:
        for port, mech, msgid in sent:
            check(find(rconn, msgid), "mail sent via %d with %s delivered to %s" % (port, mech, RCPT))
        rconn.logout()

    # ---- refresh with rotation
    st, tok2, _ = auth.token(grant_type="refresh_token", refresh_token=tok["refresh_token"])
    check(st == 200 and tok2.get("refresh_token") not in (None, tok["refresh_token"]), "refresh: new access token and a new (rotated) refresh token")
    tok2 = tok2 or {}
    issued += [tok2.get("access_token", ""), tok2.get("refresh_token", "")]
    st, body, _ = auth.token(grant_type="refresh_token", refresh_token=tok["refresh_token"])
    check(st == 400 and body.get("error") == "invalid_grant", "refresh with the used refresh token: invalid_grant")
    ok, text, _ = imap_login(IMAPS, ctx, "OAUTHBEARER", USER, tok2.get("access_token", ""))
    check(ok, "imaps %d: login with the refreshed access token" % IMAPS)

    # ---- revocation and expiry: Dovecot asks every time (no auth cache)
    st, _, _ = auth.call("POST", "/revoke", form={"client_id": client_id, "token": access, "token_type_hint": "access_token"})
    check(st == 200, "revoke (RFC 7009) the first access token")
    ok, text, _ = imap_login(IMAPS, ctx, "XOAUTH2", USER, access)
    check(not ok and "AUTHENTICATIONFAILED" in text, "imaps %d: the revoked token is refused at once (%s)" % (IMAPS, text.strip()[:60]))
    chal = []
    code_, text, _ = smtp_send(SUB, ctx, "XOAUTH2", USER, access, RCPT, "<x@example.test>", chal)
    check(code_ == 535 and len(chal) == 1 and b'"status"' in chal[0],
          "submission %d: the revoked token is refused: 334 %s, then %d" % (SUB, chal[0].decode() if chal else "-", code_))
    st, body, _ = auth.admin("expire", client_id=client_id, kind="access")
    ok, text, _ = imap_login(IMAPS, ctx, "OAUTHBEARER", USER, tok2.get("access_token", ""))
    check(st == 200 and body.get("expired", 0) >= 1 and not ok, "imaps %d: an expired access token is refused" % IMAPS)
    st, tok3, _ = auth.token(grant_type="refresh_token", refresh_token=tok2.get("refresh_token", ""))
    check(st == 200, "refresh after expiry: new tokens")
    tok3 = tok3 or {}
    issued += [tok3.get("access_token", ""), tok3.get("refresh_token", "")]

    # ---- outage (this client only): temporary, not a wrong token
    auth.admin("down", client_id=client_id)
    ok, text, _ = imap_login(IMAPS, ctx, "XOAUTH2", USER, tok3.get("access_token", ""))
    check(not ok and "UNAVAILABLE" in text, "imaps %d while the authorization server is down: [UNAVAILABLE] (%s)" % (IMAPS, text.strip()[:60]))
    # Postfix ignores the "temp" flag of Dovecot's FAIL: an outage is a 535 too, told apart from a
    # rejected token only by the missing 334 JSON challenge
    chal = []
    code_, text, _ = smtp_send(SUB, ctx, "OAUTHBEARER", USER, tok3.get("access_token", ""), RCPT, "<x@example.test>", chal)
    check(code_ == 535 and not chal,
          "submission %d while down: %d without a challenge (%s)" % (SUB, code_, text.strip()[:50]))
    st, body, hdrs = auth.token(grant_type="refresh_token", refresh_token=tok3.get("refresh_token", ""))
    check(st == 503 and (body or {}).get("error") == "temporarily_unavailable", "token endpoint while down: 503")
    auth.admin("up", client_id=client_id)
    ok, text, _ = imap_login(IMAPS, ctx, "XOAUTH2", USER, tok3.get("access_token", ""))
    check(ok, "imaps %d: login works again after /admin/up" % IMAPS)

    # ---- revoking a refresh token ends the grant
    st, _, _ = auth.call("POST", "/revoke", form={"client_id": client_id, "token": tok3.get("refresh_token", "")})
    st, body, _ = auth.token(grant_type="refresh_token", refresh_token=tok3.get("refresh_token", ""))
    ok, text, _ = imap_login(IMAPS, ctx, "XOAUTH2", USER, tok3.get("access_token", ""))
    check(st == 400 and body.get("error") == "invalid_grant" and not ok,
          "revoked refresh token: invalid_grant, and its access token is dead too")

    # ---- counters for this client
    st, stats, _ = auth.call("GET", "/admin/stats?client_id=" + client_id)
    c = stats.get("counts", {})
    check(c.get("device") == 1 and c.get("token.device_code.ok") == 1 and c.get("token.device_code.authorization_pending") == 1,
          "stats: device 1, device_code ok 1, authorization_pending 1")
    check(c.get("token.refresh_token.ok") == 2 and c.get("token.refresh_token.reused") == 1 and c.get("token.refresh_token.revoked") == 1,
          "stats: refresh ok 2, reused 1, revoked 1")
    check(c.get("introspect.active", 0) >= 10 and c.get("introspect.inactive", 0) >= 3 and c.get("introspect.unavailable", 0) >= 2,
          "stats: introspect active %s inactive %s unavailable %s" % (c.get("introspect.active"), c.get("introspect.inactive"), c.get("introspect.unavailable")))
    st, ustats, _ = auth.call("GET", "/admin/stats?username=" + urllib.parse.quote(RCPT))
    check(ustats.get("counts", {}).get("token.authorization_code.ok", 0) >= 1, "stats by username: the code flow counted for %s" % RCPT)

    # ---- no token in any log
    if a.log_dir:
        leaked = []
        secrets_ = [t for t in issued if t]
        for name in sorted(os.listdir(a.log_dir)):
            path = os.path.join(a.log_dir, name)
            if not os.path.isfile(path):
                continue
            with open(path, "rb") as f:
                data = f.read()
            for t in secrets_:
                if t.encode() in data:
                    leaked.append(name)
                    break
        check(not leaked, "no token in the logs (%d files in %s)%s" % (len(os.listdir(a.log_dir)), a.log_dir,
                                                                       ": " + " ".join(leaked) if leaked else ""))

    print("selftest-oauth2: %s" % ("PASSED" if not FAILS else "FAILED (%d)" % len(FAILS)))
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()
