#!/usr/bin/env python3
"""Deterministic realistic test mail generator writing straight into a Maildir.

Used by `scripts/mailserver seed`. Messages are generated from one seeded RNG in sequence,
so message i is the same whatever --count is (seeding N=1000 gives the first 1000 messages
of N=100000); --offset K skips the first K messages of the sequence. Dates are spread over
the two years before --now (default: a fixed anchor, so output is byte-identical between
runs). Only the standard library is used.
"""
import argparse
import base64
import binascii
import os
import random
import sys
import time

ANCHOR = 1793491200  # 2026-11-01T00:00:00Z: default "now" for deterministic dates
TWO_YEARS = 2 * 365 * 86400
SEED = 0x6D61696C726F6F6D  # "mailroom"

FIRST = ["Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry", "Isabel", "Jack",
         "Karen", "Liam", "Mia", "Noah", "Olivia", "Paul", "Quinn", "Rachel", "Sam", "Tina",
         "José", "Zoë", "Jürgen", "François", "Søren", "Łukasz", "María", "Björn", "Renée",
         "Ólafur", "Ольга", "Дмитрий", "山田", "さくら", "Nguyễn", "Αλέξης", "Chloé", "Günther",
         "Inês", "Mårten"]
LAST = ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Miller",
        "Garcia", "Müller", "Schröder", "Dubois", "Lefèvre", "Nørgaard", "Kowalski", "Peña",
        "Åberg", "Иванова", "Петров", "太郎", "Tanaka", "Trần", "Papadopoulos", "O'Brien",
        "van der Berg", "Costa", "Rossi", "Novák", "Yılmaz"]
DOMAIN_WORDS = ["northwind", "contoso", "fabrikam", "initech", "globex", "umbrella", "acme",
                "hooli", "vandelay", "wayne", "stark", "tyrell", "cyberdyne", "soylent",
                "wonka", "gringotts", "oceanic", "monarch", "aperture", "blackmesa", "dunder",
                "pied-piper", "massive", "veridian", "zorg", "nakatomi", "gekko", "duff",
                "krusty", "sirius", "prestige", "bluth", "wernham", "sterling", "lacroix",
                "müller-bau", "buchhandlung", "librairie", "universidad", "kobayashi"]
TLDS = ["com", "org", "net", "de", "fr", "co.uk", "io", "co.jp", "es", "nl"]
WORDS = ("the a project meeting report update schedule budget review design server release "
         "team customer invoice contract draft proposal deadline agenda notes summary question "
         "answer issue ticket build deploy test results data analysis quarter plan roadmap "
         "feature bug fix patch version document slides presentation travel booking hotel "
         "flight lunch dinner weekend holiday office remote call video conference please "
         "thanks regards attached below above following next last week month year today "
         "tomorrow morning afternoon evening quick short long important urgent minor major "
         "we you they it is are was were will would could should can may might must have has "
         "had do does did not and or but if then so because when while after before with "
         "without for from to in on at by about into over under again further once here "
         "there all any both each few more most other some such only own same than too very").split()
LATIN1_WORDS = ("für Grüße Straße café déjà vu naïve façade Müller Köln Zürich über schön "
                "crème brûlée résumé señor año niño Ångström œuvre garçon").split()
UTF8_WORDS = ("日本語 テスト 会議 Привет мир Ελληνικά ✓ → € 🎉 ☕ Ünïcödé naïve 東京 "
              "München Kraków Αθήνα").split()

SUBJECT_TEMPLATES = [
    "Quarterly report Q{q} {year}", "Meeting on {day}", "Invoice #{num}", "Project {proj} status",
    "Your order {num} has shipped", "Question about the {word} {word2}", "Lunch {day}?",
    "Draft: {proj} proposal", "[{proj}] Build #{num} failed", "[{proj}] Build #{num} fixed",
    "Weekly newsletter #{n2}", "Reminder: {word} deadline on {day}", "Fwd: {word} {word2}",
    "Notes from {day}'s call", "Travel booking confirmation {num}", "{word} {word2} {word3}",
]
NONASCII_SUBJECTS = [
    "Résumé of the café meeting", "Grüße aus München", "Über den Entwurf für {day}",
    "Ünïcödé test ✓ {num}", "会議の議事録 {num}", "Привет из Москвы", "🎉 Launch party on {day}",
    "Crème brûlée recipe for {day}", "Año nuevo: planning {year}", "Ελληνικά: {word} update",
    "Zürich → Köln itinerary", "Price in € for order {num}",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
TZS = [0, 0, 60, 60, 120, -300, -240, -420, 330, 540, 600, -180]
PROJECTS = ["Apollo", "Zephyr", "Orion", "Hermes", "Atlas", "Nimbus", "Kestrel", "Tundra"]

ATTACHMENTS = [
    ("report.csv", "text/csv", lambda r: "\n".join(
        ",".join(str(r.randint(0, 9999)) for _ in range(6)) for _ in range(r.randint(5, 60))).encode()),
    ("notes.txt", "text/plain; charset=utf-8", lambda r: (" ".join(
        r.choice(WORDS) for _ in range(r.randint(50, 400))) + "\n").encode()),
    ("pixel.png", "image/png", lambda r: base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")),
    ("data.bin", "application/octet-stream", lambda r: bytes(r.getrandbits(8) for _ in range(r.randint(256, 4096)))),
    ("Übersicht.pdf", "application/pdf", lambda r: b"%PDF-1.4\n% mailroom test\n" + bytes(
        r.getrandbits(8) for _ in range(r.randint(512, 3000))) + b"\n%%EOF\n"),
]


def enc_word_b(text, charset="UTF-8"):
    return "=?%s?B?%s?=" % (charset, base64.b64encode(text.encode(charset)).decode())


def enc_word_q(text, charset="UTF-8"):
    out = []
    for b in text.encode(charset):
        c = chr(b)
        if c == " ":
            out.append("_")
        elif c.isalnum() and b < 128:
            out.append(c)
        else:
            out.append("=%02X" % b)
    return "=?%s?Q?%s?=" % (charset, "".join(out))


def encode_header_text(r, text):
    """RFC 2047-encode a header value if it is not ASCII (varying charset/encoding)."""
    try:
        text.encode("ascii")
        return text
    except UnicodeEncodeError:
        pass
    latin1 = True
    try:
        text.encode("iso-8859-1")
    except UnicodeEncodeError:
        latin1 = False
    k = r.random()
    if latin1 and k < 0.35:
        return enc_word_q(text, "ISO-8859-1")
    if k < 0.6:
        return enc_word_q(text, "UTF-8")
    # long values: split into several encoded words (max 75 chars each)
    words, cur = [], ""
    for ch in text:
        if len((cur + ch).encode()) > 36:
            words.append(enc_word_b(cur))
            cur = ""
        cur += ch
    if cur:
        words.append(enc_word_b(cur))
    return "\n ".join(words)


def fmt_addr(r, name, addr):
    try:
        name.encode("ascii")
        if any(c in name for c in "'.,"):
            return '"%s" <%s>' % (name, addr)
        return "%s <%s>" % (name, addr)
    except UnicodeEncodeError:
        return "%s <%s>" % (encode_header_text(r, name), addr)


def fmt_date(epoch, tz_min):
    t = time.gmtime(epoch + tz_min * 60)
    sign = "+" if tz_min >= 0 else "-"
    a = abs(tz_min)
    return "%s, %d %s %d %02d:%02d:%02d %s%02d%02d" % (
        DAYS[t.tm_wday][:3], t.tm_mday, MONTHS[t.tm_mon - 1], t.tm_year,
        t.tm_hour, t.tm_min, t.tm_sec, sign, a // 60, a % 60)


def ascii_local(s):
    table = {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "é": "e", "è": "e", "ç": "c", "ø": "o",
             "å": "a", "ł": "l", "ñ": "n", "ó": "o", "í": "i", "ë": "e", "ê": "e", "ı": "i"}
    out = "".join(table.get(c, c) for c in s.lower())
    out = "".join(c for c in out if c.isascii() and (c.isalnum() or c in ".-"))
    return out


def build_people():
    r = random.Random(SEED ^ 0x5EED)
    domains = []
    for i, w in enumerate(DOMAIN_WORDS):
        dw = ascii_local(w) or "mail%d" % i
        domains.append("%s.%s" % (dw, TLDS[i % len(TLDS)]))
    people = []
    seen = set()
    i = 0
    while len(people) < 200:
        first, last = r.choice(FIRST), r.choice(LAST)
        dom = domains[len(people) % len(domains)] if len(people) < 40 else r.choice(domains)
        local = ascii_local(first) + "." + ascii_local(last)
        if local.startswith(".") or local.endswith(".") or len(local) < 3:
            local = "user%d" % i
        addr = "%s@%s" % (local, dom)
        i += 1
        if addr in seen:
            continue
        seen.add(addr)
        people.append(("%s %s" % (first, last), addr))
    # some list/automated senders
    people += [("Build Bot", "ci@builds.acme.io"), ("Newsletter", "news@letters.northwind.com"),
               ("noreply", "no-reply@globex.net")]
    return people


def sentence(r, extra=None, extra_p=0.0):
    n = r.randint(5, 16)
    ws = []
    for _ in range(n):
        if extra and r.random() < extra_p:
            ws.append(r.choice(extra))
        else:
            ws.append(r.choice(WORDS))
    s = " ".join(ws)
    return s[0].upper() + s[1:] + r.choice([".", ".", ".", "?", "!"])


def paragraphs(r, extra=None, extra_p=0.0):
    paras = []
    for _ in range(r.randint(1, 6)):
        paras.append(" ".join(sentence(r, extra, extra_p) for _ in range(r.randint(1, 5))))
    return paras


def wrap(text, width=72):
    out, line = [], ""
    for w in text.split(" "):
        if line and len(line) + 1 + len(w) > width:
            out.append(line)
            line = w
        else:
            line = (line + " " + w) if line else w
    if line:
        out.append(line)
    return "\n".join(out)


def b64_lines(data):
    s = base64.b64encode(data).decode()
    return "\n".join(s[i:i + 76] for i in range(0, len(s), 76))


def qp(data):
    return binascii.b2a_qp(data).decode("ascii")


def text_part(r, paras, sender_name, quote=None):
    """Return (headers, body) of a leaf text/plain part with a varied charset/encoding."""
    body = "Hi,\n\n" + "\n\n".join(wrap(p) for p in paras)
    if quote:
        body += "\n\n" + "\n".join("> " + l for l in wrap(quote).split("\n"))
    body += "\n\n-- \n%s\n" % sender_name
    k = r.random()
    try:
        body.encode("iso-8859-1")
        latin1 = True
    except UnicodeEncodeError:
        latin1 = False
    if latin1 and k < 0.25:
        return ("Content-Type: text/plain; charset=iso-8859-1\n"
                "Content-Transfer-Encoding: quoted-printable\n", qp(body.encode("iso-8859-1")))
    if k < 0.4:
        return ("Content-Type: text/plain; charset=utf-8\n"
                "Content-Transfer-Encoding: base64\n", b64_lines(body.encode()) + "\n")
    if k < 0.55:
        return ("Content-Type: text/plain; charset=utf-8; format=flowed\n"
                "Content-Transfer-Encoding: quoted-printable\n", qp(body.encode()))
    try:
        body.encode("ascii")
        cte = "7bit"
    except UnicodeEncodeError:
        cte = "8bit"
    return ("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: %s\n" % cte, body)


def html_part(paras, sender_name):
    esc = lambda s: s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    html = ("<html><head><meta charset=\"utf-8\"></head><body>\n<p>Hi,</p>\n"
            + "\n".join("<p>%s</p>" % esc(p) for p in paras)
            + "\n<p>-- <br><b>%s</b></p>\n</body></html>\n" % esc(sender_name))
    return ("Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n",
            qp(html.encode()))


class Gen:
    def __init__(self, user, now):
        self.r = random.Random(SEED)
        self.people = build_people()
        self.user = user
        self.now = now
        self.recent = []  # (msgid, refs, subject, date, idx)

    def one(self, idx):
        r = self.r
        name, addr = r.choice(self.people[:60]) if r.random() < 0.5 else r.choice(self.people)
        dom = addr.split("@", 1)[1]
        msgid = "<%d.%08x.seed@%s>" % (idx, r.getrandbits(32), dom)
        tz = r.choice(TZS)
        in_reply, refs, quote = None, [], None
        if self.recent and r.random() < 0.25:
            pmsgid, prefs, psubj, pdate, _ = r.choice(self.recent[-200:])
            in_reply = pmsgid
            refs = (prefs + [pmsgid])[-10:]
            subject = psubj if psubj.lower().startswith("re:") else "Re: " + psubj
            date = min(pdate + r.randint(300, 3 * 86400), self.now - 60)
            quote = sentence(r)
        else:
            date = self.now - r.randint(60, TWO_YEARS)
            fill = dict(q=r.randint(1, 4), year=r.randint(2024, 2026), day=r.choice(DAYS),
                        num=r.randint(1000, 99999), n2=r.randint(1, 200), proj=r.choice(PROJECTS),
                        word=r.choice(WORDS), word2=r.choice(WORDS), word3=r.choice(WORDS))
            if r.random() < 0.3:
                subject = r.choice(NONASCII_SUBJECTS).format(**fill)
            else:
                subject = r.choice(SUBJECT_TEMPLATES).format(**fill)
        self.recent.append((msgid, refs, subject, date, idx))
        if len(self.recent) > 400:
            del self.recent[:200]

        extra = None
        k = r.random()
        if k < 0.15:
            extra, ep = LATIN1_WORDS, 0.15
        elif k < 0.3:
            extra, ep = UTF8_WORDS, 0.1
        else:
            ep = 0.0
        paras = paragraphs(r, extra, ep)

        hdr = [
            "Return-Path: <%s>" % addr,
            "Message-ID: %s" % msgid,
            "Date: %s" % fmt_date(date, tz),
            "From: %s" % fmt_addr(r, name, addr),
            "To: %s" % self.user,
        ]
        if r.random() < 0.15:
            cc = [r.choice(self.people) for _ in range(r.randint(1, 3))]
            hdr.append("Cc: " + ",\n ".join(fmt_addr(r, n, a) for n, a in cc))
        hdr.append("Subject: %s" % encode_header_text(r, subject))
        if in_reply:
            hdr.append("In-Reply-To: %s" % in_reply)
            hdr.append("References: " + "\n ".join(refs))
        if addr.startswith("news@"):
            hdr.append("List-Id: Northwind news <news.northwind.com>")
            hdr.append("List-Unsubscribe: <mailto:unsubscribe@letters.northwind.com>")
        hdr.append("MIME-Version: 1.0")
        if r.random() < 0.3:
            hdr.append("X-Mailer: mailroom-seed/1")

        kind = r.random()
        if kind < 0.55:
            ph, pb = text_part(r, paras, name, quote)
            msg = "\n".join(hdr) + "\n" + ph + "\n" + pb
        elif kind < 0.85:
            b = "=_alt_%d_%x" % (idx, r.getrandbits(24))
            th, tb = text_part(r, paras, name, quote)
            hh, hb = html_part(paras, name)
            msg = ("\n".join(hdr) + "\nContent-Type: multipart/alternative; boundary=\"%s\"\n\n"
                   "This is a multi-part message in MIME format.\n\n"
                   "--%s\n%s\n%s\n--%s\n%s\n%s\n--%s--\n" % (b, b, th, tb, b, hh, hb, b))
        else:
            b = "=_mix_%d_%x" % (idx, r.getrandbits(24))
            th, tb = text_part(r, paras, name, quote)
            parts = ["--%s\n%s\n%s\n" % (b, th, tb)]
            for _ in range(1 if r.random() < 0.8 else 2):
                fname, ctype, gen = r.choice(ATTACHMENTS)
                data = gen(r)
                try:
                    fname.encode("ascii")
                    disp = 'attachment; filename="%s"' % fname
                except UnicodeEncodeError:
                    disp = 'attachment; filename="%s"' % enc_word_b(fname)
                parts.append("--%s\nContent-Type: %s; name=\"%s\"\nContent-Disposition: %s\n"
                             "Content-Transfer-Encoding: base64\n\n%s\n" %
                             (b, ctype, fname if fname.isascii() else enc_word_b(fname), disp,
                              b64_lines(data)))
            msg = ("\n".join(hdr) + "\nContent-Type: multipart/mixed; boundary=\"%s\"\n\n"
                   % b + "".join(parts) + "--%s--\n" % b)

        flags = ""
        if r.random() < 0.04:
            flags += "F"
        seen = r.random() < (0.85 if date < self.now - 30 * 86400 else 0.4)
        if seen and in_reply and r.random() < 0.3:
            flags += "R"
        if seen:
            flags += "S"
        return msg.encode("utf-8"), date, flags


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--maildir", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--now", type=int, default=ANCHOR)
    ap.add_argument("--uid", type=int)
    ap.add_argument("--gid", type=int)
    a = ap.parse_args()

    if a.uid is not None and os.getuid() == 0:
        os.setgroups([])
        os.setgid(a.gid)
        os.setuid(a.uid)
    os.umask(0o077)
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(a.maildir, d), exist_ok=True)
    tmpdir = os.path.join(a.maildir, "tmp")
    curdir = os.path.join(a.maildir, "cur")

    g = Gen(a.user, a.now)
    t0 = time.time()
    for idx in range(a.offset):
        g.one(idx)
    for idx in range(a.offset, a.offset + a.count):
        data, date, flags = g.one(idx)
        size = len(data)
        vsize = size + data.count(b"\n")
        base = "%d.M%06dP%d.mailroom-seed,S=%d,W=%d" % (date, idx % 1000000, idx, size, vsize)
        tmp = os.path.join(tmpdir, base)
        with open(tmp, "wb") as f:
            f.write(data)
        os.utime(tmp, (date, date))
        os.rename(tmp, os.path.join(curdir, base + ":2," + flags))
    dt = time.time() - t0
    print("seed: wrote %d messages (offset %d) for %s in %.1fs" % (a.count, a.offset, a.user, dt),
          file=sys.stderr)


if __name__ == "__main__":
    main()
