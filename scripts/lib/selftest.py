#!/usr/bin/env python3
"""Smoke test of running local mail servers (used by `scripts/mailserver selftest`).

Checks certificate verification against the private CA, IMAP LOGIN on the implicit-TLS and
STARTTLS ports, capabilities and SPECIAL-USE flags (main vs bare), SMTP submission with
STARTTLS and implicit TLS, the relay without AUTH, local delivery, and the filer's server-side
Sent copy. The oauth2 profile has its own script, selftest_oauth2.py.
Standard library only. Exit status 0 when everything passed.
"""
import argparse
import imaplib
import smtplib
import ssl
import sys
import time
import uuid

FAILS = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        FAILS.append(what)


def imap(port, ctx, starttls=False):
    if starttls:
        m = imaplib.IMAP4("127.0.0.1", port)
        m.starttls(ssl_context=ctx)
        return m
    return imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx)


def caps(m):
    typ, data = m.capability()
    return set(data[-1].decode().upper().split())


def find(user, port, ctx, folder, token, timeout=15.0):
    m = imap(port, ctx)
    m.login(user, "secret")
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            m.select(folder, readonly=True)
            typ, data = m.search(None, "HEADER", "Message-ID", token)
            if data and data[0].split():
                return True
            time.sleep(0.2)
        return False
    finally:
        m.logout()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ca", required=True)
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--bare", action="store_true", help="also test the bare profile")
    a = ap.parse_args()
    o = a.offset
    ctx = ssl.create_default_context(cafile=a.ca)
    want = {"CONDSTORE", "QRESYNC", "UIDPLUS", "MOVE", "IDLE", "SPECIAL-USE"}

    for port, tls in ((1993 + o, False), (1143 + o, True)):
        m = imap(port, ctx, starttls=tls)
        m.login("alice@example.test", "secret")
        c = caps(m)
        check(want <= c, "main %d: capabilities include %s" % (port, " ".join(sorted(want))))
        typ, lst = m.list()
        flags = {l.decode().split(")")[0] for l in lst}
        joined = " ".join(flags)
        check(all(f in joined for f in ("\\Sent", "\\Drafts", "\\Trash", "\\Junk", "\\Archive")),
              "main %d: LIST has special-use flags" % port)
        m.logout()

    tok = "<selftest-%s@example.test>" % uuid.uuid4().hex
    msg = ("From: alice@example.test\r\nTo: selftest-rcpt@example.test\r\nSubject: selftest\r\n"
           "Message-ID: %s\r\n\r\nhello\r\n" % tok)
    s = smtplib.SMTP("127.0.0.1", 1587 + o, timeout=30)
    s.starttls(context=ctx)
    s.ehlo()
    size = int(s.esmtp_features.get("size", "0") or 0)
    check(size >= 50 * 1024 * 1024, "submission %d: SIZE %d >= 50 MB" % (1587 + o, size))
    s.login("alice@example.test", "secret")
    s.sendmail("alice@example.test", ["selftest-rcpt@example.test"], msg)
    s.quit()
    check(find("selftest-rcpt@example.test", 1993 + o, ctx, "INBOX", tok), "alice -> selftest-rcpt via 1587 delivered")

    tok2 = "<selftest-%s@example.test>" % uuid.uuid4().hex
    s = smtplib.SMTP_SSL("127.0.0.1", 1465 + o, context=ctx, timeout=30)
    s.login("filer-selftest@example.test", "secret")
    s.sendmail("filer-selftest@example.test", ["selftest-rcpt@example.test"],
               msg.replace(tok, tok2).replace("From: alice", "From: filer-selftest"))
    s.quit()
    check(find("selftest-rcpt@example.test", 1993 + o, ctx, "INBOX", tok2),
          "filer-selftest -> selftest-rcpt via 1465 delivered")
    check(find("filer-selftest@example.test", 1993 + o, ctx, "Sent", tok2),
          "filer-selftest's copy filed into Sent by the server")
    check(not find("alice@example.test", 1993 + o, ctx, "Sent", tok, timeout=1),
          "alice's mail is not filed into Sent by the server")

    # the relay (issue 13): loopback senders need no AUTH and no TLS; AUTH is never offered
    tok3 = "<selftest-%s@example.test>" % uuid.uuid4().hex
    s = smtplib.SMTP("127.0.0.1", 6025 + o, timeout=30)
    s.ehlo()
    check("auth" not in s.esmtp_features and "starttls" in s.esmtp_features,
          "relay %d: no AUTH offered (STARTTLS optional)" % (6025 + o))
    s.sendmail("relay-sender@example.test", ["selftest-rcpt@example.test"],
               msg.replace(tok, tok3).replace("From: alice", "From: relay-sender"))
    s.quit()
    check(find("selftest-rcpt@example.test", 1993 + o, ctx, "INBOX", tok3),
          "relay-sender -> selftest-rcpt via relay %d without AUTH delivered" % (6025 + o))
    s = smtplib.SMTP("127.0.0.1", 6025 + o, timeout=30)
    s.starttls(context=ctx)
    s.ehlo()
    check("auth" not in s.esmtp_features, "relay %d: no AUTH after STARTTLS either" % (6025 + o))
    s.quit()

    if a.bare:
        for port, tls in ((2993 + o, False), (2143 + o, True)):
            m = imap(port, ctx, starttls=tls)
            m.login("alice@example.test", "secret")
            c = caps(m)
            check(c == {"IMAP4REV1"}, "bare %d: capabilities are only IMAP4rev1 (%s)" % (port, " ".join(sorted(c))))
            typ, lst = m.list()
            text = b" ".join(lst).decode()
            check("\\Sent" not in text and all(n in text for n in ("Sent", "Drafts", "Trash")),
                  "bare %d: Sent/Drafts/Trash without special-use flags" % port)
            m.logout()

    print("selftest: %s" % ("PASSED" if not FAILS else "FAILED (%d)" % len(FAILS)))
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()
