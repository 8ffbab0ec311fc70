#!/usr/bin/env bash
# make-corpus.sh — the corpus make demo and make test train and evaluate on, built from Debian
# (bookworm) packages on the user's own machine and cached, so a fresh clone needs nothing else.
#
#   scripts/make-corpus.sh [OUTDIR]
#       default OUTDIR: $GQA_CACHE_DIR/corpus, else ${XDG_CACHE_HOME:-~/.cache}/gqa/corpus
#
# Environment:
#   SKIP_APT=1   do not run apt-get (packages must already be installed and the
#                Translation-en index must already be in /var/lib/apt/lists).
#
# What it does (same inputs give byte-identical outputs):
#   0. Nothing when OUTDIR already holds a finished corpus (MANIFEST.md is written last).
#   1. Installs the source packages by name with --no-install-recommends when one is missing,
#      after apt-get update with Acquire::Languages=en (long package descriptions are only in the
#      Translation-en index). About 90 MB of packages.
#   2. Extracts public-domain English prose: six Jane Austen novels
#      (r-cran-janeaustenr), Great Expectations, Twenty Thousand Leagues under
#      the Sea and The War of the Worlds (r-cran-tidytext extdata/books.rda),
#      the King James Bible (bible-kjv), the Jargon File (jargon-text) and the
#      Debian Administrator's Handbook, en-US (debian-handbook).
#   3. Writes train.txt / valid.txt (Persuasion) / test.txt (The War of the
#      Worlds), and summ-{train,valid,test}.jsonl: Debian long description ->
#      synopsis pairs. Everything gzip -9n'd, plus MANIFEST.md, into a temporary folder beside
#      OUTDIR that is renamed to OUTDIR at the end: an interrupted run leaves no half corpus.
# The recipe is the one the developers' reference corpus was built with; from the same package
# versions every file comes out byte-identical to it (checked 2026-12-07, Debian bookworm).
set -euo pipefail
export LC_ALL=C.UTF-8 LANG=C.UTF-8

cache=${GQA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/gqa}
final=${1:-$cache/corpus}
files=(train.txt.gz valid.txt.gz test.txt.gz summ-train.jsonl.gz summ-valid.jsonl.gz summ-test.jsonl.gz)
complete=1
for f in MANIFEST.md "${files[@]}"; do [ -s "$final/$f" ] || complete=0; done
if [ $complete = 1 ]; then
  echo "make-corpus: using $final"
  exit 0
fi
if [ -e "$final" ]; then
  echo "make-corpus: $final exists but holds no finished corpus (no MANIFEST.md or a missing file);" \
       "remove it and run again" >&2
  exit 2
fi
parent=$(dirname "$final")
mkdir -p "$parent"
final=$(cd "$parent" && pwd)/$(basename "$final")

pkgs=(r-base-core r-cran-janeaustenr r-cran-tidytext bible-kjv bible-kjv-text
      jargon-text debian-handbook)
command -v python3 >/dev/null 2>&1 || pkgs+=(python3)

sudo=()
[ "$(id -u)" = 0 ] || sudo=(sudo)

start=$(date +%s)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
have_translations=0
compgen -G "/var/lib/apt/lists/*_i18n_Translation-en*" >/dev/null && have_translations=1
echo "make-corpus: building the corpus once into $final (about 30 s; Debian packages to install:" \
     "${missing[*]:-none})"
if [ "${SKIP_APT:-0}" != 1 ] && { [ ${#missing[@]} -gt 0 ] || [ $have_translations = 0 ]; }; then
  "${sudo[@]}" apt-get update -qq -o Acquire::Languages=en
  [ ${#missing[@]} -eq 0 ] || "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

work=$(mktemp -d)
out=$(mktemp -d "$final.tmp-XXXXXX")
trap 'rm -rf "$work" "$out"' EXIT
mkdir -p "$work/raw"

# --- 1. novels from the R data packages --------------------------------------
Rscript --vanilla - "$work/raw" <<'RSCRIPT'
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]
put <- function(x, name) {
  con <- file(file.path(dir, paste0(name, ".txt")), open = "w", encoding = "UTF-8")
  writeLines(enc2utf8(as.character(x)), con)
  close(con)
}
for (n in c("sensesensibility", "prideprejudice", "mansfieldpark", "emma",
            "northangerabbey", "persuasion")) {
  d <- new.env()
  data(list = n, package = "janeaustenr", envir = d)
  put(d[[n]], n)
}
e <- new.env()
load(system.file("extdata", "books.rda", package = "tidytext"), envir = e)
b <- e$books
put(b$text[b$gutenberg_id == 1400], "greatexpectations")
put(b$text[b$gutenberg_id == 164], "twentythousandleagues")
put(b$text[b$gutenberg_id == 36], "waroftheworlds")
RSCRIPT

# --- 2. the King James Bible (bible-kjv), one verse per line -----------------
bible -l 100000 'Gen1:1-Rev22:21' > "$work/raw/kjv.txt"

# --- 3. Jargon File ------------------------------------------------------------
zcat /usr/share/doc/jargon-text/jargon.txt.gz > "$work/raw/jargon.txt"

# --- 4. package versions and the suite's Release facts, for the manifest -----
for p in r-cran-janeaustenr r-cran-tidytext bible-kjv bible-kjv-text jargon-text \
         debian-handbook; do
  printf '%s\t%s\n' "$p" "$(dpkg-query -W -f='${Version}' "$p")"
done > "$work/versions.tsv"

# Translation-en and Packages of the release suite's main component (not
# -updates / -security, which change more often); apt-helper decompresses
# whatever compression apt chose to keep them in.
lists=/var/lib/apt/lists
first_match() {   # first_match REGEX FILE... -> first existing FILE whose name matches
  local re=$1 f
  shift
  for f in "$@"; do
    if [ -e "$f" ] && [[ $(basename "$f") =~ $re ]]; then
      printf '%s\n' "$f"
      return 0
    fi
  done
}
tr_file=$(first_match '_dists_[a-z]+_main_i18n_Translation-en' "$lists"/*_i18n_Translation-en*)
pk_file=$(first_match '_dists_[a-z]+_main_binary-[^_]+_Packages' "$lists"/*_Packages*)
rel_file=$(first_match '_dists_[a-z]+_InRelease$' "$lists"/*_InRelease)
if [ -z "$tr_file" ] || [ -z "$pk_file" ]; then
  echo "make-corpus: no Translation-en/Packages index in $lists;" \
       "run without SKIP_APT=1" >&2
  exit 1
fi
/usr/lib/apt/apt-helper cat-file "$tr_file" > "$work/Translation-en"
/usr/lib/apt/apt-helper cat-file "$pk_file" > "$work/Packages"
: > "$work/Release"
[ -z "$rel_file" ] || grep -E '^(Suite|Version|Codename|Date):' "$rel_file" \
  > "$work/Release" || true
printf 'Architecture: %s\n' "$(dpkg --print-architecture)" >> "$work/Release"

# --- 5. normalise, assemble, write --------------------------------------------
python3 - "$work" "$out" <<'PYTHON'
import hashlib, html.parser, json, os, re, subprocess, sys, unicodedata

work, out = sys.argv[1], sys.argv[2]
raw = os.path.join(work, "raw")

def read(p):
    with open(p, encoding="utf-8") as f:
        return f.read()

CTRL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
# host names of package archives / registries (and the Debian project's hosts):
# lines (text) or records (jsonl) mentioning one are dropped
REGISTRY = re.compile(r"\b(debian|ubuntu)\.(org|com|net)\b|\b(pypi|pythonhosted|npmjs|yarnpkg|"
                      r"crates|golang|go|rubygems|r-project|cran|cpan|metacpan|hackage|"
                      r"packagist|nuget|maven|docker|anaconda|conda|launchpad|alioth)\.[a-z]",
                      re.I)
dropped = {"lines": 0, "records": 0}

def drop_registry_lines(t):
    keep = []
    for l in t.split("\n"):
        if REGISTRY.search(l):
            dropped["lines"] += 1
        else:
            keep.append(l)
    return "\n".join(keep)

def normalize(t):
    """UTF-8/NFC, unix newlines, no trailing blanks, at most 2 blank lines."""
    t = t.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n")
    t = t.lstrip("\ufeff").replace("\u00a0", " ")
    t = drop_registry_lines(CTRL.sub("", unicodedata.normalize("NFC", t)))
    t = "\n".join(l.rstrip() for l in t.split("\n")).strip("\n")
    return re.sub(r"\n{4,}", "\n\n\n", t)

def strip_gutenberg(t):
    """Cut Project Gutenberg header/footer and drop paragraphs about it."""
    m = re.search(r"^\*\*\* ?START OF (THIS|THE) PROJECT GUTENBERG[^\n]*$", t, re.M | re.I)
    if m:
        t = t[m.end():]
    m = re.search(r"^(\*\*\* ?END OF (THIS|THE) PROJECT GUTENBERG|End of (the )?Project Gutenberg)",
                  t, re.M | re.I)
    if m:
        t = t[:m.start()]
    paras = re.split(r"(\n\s*\n)", t)
    keep = []
    for i in range(0, len(paras), 2):
        p = paras[i]
        if re.search(r"gutenberg|\betext", p, re.I):
            continue
        keep.append(p + (paras[i + 1] if i + 1 < len(paras) else ""))
    return "".join(keep)

def novel(name):
    return normalize(strip_gutenberg(normalize(read(os.path.join(raw, name + ".txt")))))

# ---- KJV: one document per biblical book --------------------------------------
def kjv_books():
    books, cur_book, cur = [], None, []
    for line in read(os.path.join(raw, "kjv.txt")).split("\n"):
        if not line.strip():
            continue
        m = re.match(r"^(\S.*?) (\d+)$", line)
        if m:
            book, chap = m.group(1), m.group(2)
            if book != cur_book:
                if cur_book:
                    books.append((cur_book, cur))
                cur_book, cur = book, [book]
            cur.append("")
            cur.append(("Psalm " if book == "Psalms" else "Chapter ") + chap)
            cur.append("")
            continue
        v = re.match(r"^\s+\d+ (.*)$", line)
        if not v:
            raise SystemExit("make-corpus: unexpected bible output line: %r" % line)
        cur.append(v.group(1).strip())
    books.append((cur_book, cur))
    if len(books) != 66:
        raise SystemExit("make-corpus: expected 66 books of the KJV, got %d" % len(books))
    return [("The King James Bible: " + b, normalize("\n".join(l))) for b, l in books]

# ---- Jargon File ----------------------------------------------------------------
def jargon():
    t = normalize(read(os.path.join(raw, "jargon.txt")))
    lines = t.split("\n")
    return normalize("\n".join(l[3:] if l.startswith("   ") else l for l in lines))

# ---- Debian Administrator's Handbook (en-US html -> text) -----------------------
HB = "/usr/share/doc/debian-handbook/html/en-US"
BLOCK = {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "dt", "dd", "pre",
         "table", "tr", "blockquote", "ul", "ol", "dl", "br", "hr", "caption"}
VOID = {"br", "hr", "img", "meta", "link", "input", "area", "col", "base", "wbr"}

class Html2Text(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks, self.buf, self.skip, self.pre = [], [], 0, 0
    def flush(self):
        s = "".join(self.buf)
        self.buf = []
        if self.pre:
            s = "\n".join(l.rstrip() for l in s.strip("\n").split("\n"))
        else:
            s = " ".join(s.split())
        if s.strip():
            self.blocks.append(s)
    def handle_starttag(self, tag, attrs):
        if self.skip:
            if tag not in VOID:
                self.skip += 1
            return
        a = dict(attrs)
        cls = (a.get("class") or "").split()
        if tag in ("head", "script", "style") or a.get("id") in ("banner", "title") \
                or "docnav" in cls or "indexterm" in cls:
            if tag not in VOID:
                self.skip = 1
            return
        if tag in BLOCK:
            self.flush()
        if tag == "pre":
            self.pre += 1
        if tag == "td" or tag == "th":
            self.buf.append(" ")
    def handle_startendtag(self, tag, attrs):
        if not self.skip and tag in BLOCK:
            self.flush()
    def handle_endtag(self, tag):
        if self.skip:
            self.skip -= 1
            return
        if tag in BLOCK:
            self.flush()
        if tag == "pre":
            self.pre -= 1
        if tag == "td" or tag == "th":
            self.buf.append(" ")
    def handle_data(self, d):
        if not self.skip:
            self.buf.append(d)

def handbook():
    order, page, seen = [], "index.html", set()
    while page and page not in seen:          # follow <link rel="next">
        seen.add(page)
        order.append(page)
        m = re.search(r'<link rel="next" href="([^"#]+)"', read(os.path.join(HB, page)))
        page = m.group(1) if m else None
    parts = []
    for p in order:
        h = Html2Text()
        h.feed(read(os.path.join(HB, p)))
        h.close()
        h.flush()
        parts.append("\n\n".join(h.blocks))
    return normalize("\n\n\n".join(parts))

# ---- assemble --------------------------------------------------------------------
versions = dict(l.split("\t") for l in read(os.path.join(work, "versions.tsv")).split("\n") if l)
def pv(*ps):
    return ", ".join("%s %s" % (p, versions[p]) for p in ps)

PD_R = "public domain text; packaged under MIT (see /usr/share/doc/%s/copyright)"
AUSTEN = [("sensesensibility", "Sense and Sensibility"), ("prideprejudice", "Pride and Prejudice"),
          ("mansfieldpark", "Mansfield Park"), ("emma", "Emma"),
          ("northangerabbey", "Northanger Abbey")]
train_docs = []   # (title, text, packages, licence)
for key, title in AUSTEN:
    train_docs.append((title + " (Jane Austen)", novel(key), pv("r-cran-janeaustenr"),
                       PD_R % "r-cran-janeaustenr"))
train_docs.append(("Great Expectations (Charles Dickens)", novel("greatexpectations"),
                   pv("r-cran-tidytext"), PD_R % "r-cran-tidytext"))
train_docs.append(("Twenty Thousand Leagues under the Sea (Jules Verne)",
                   novel("twentythousandleagues"), pv("r-cran-tidytext"), PD_R % "r-cran-tidytext"))
for title, text in kjv_books():
    train_docs.append((title, text, pv("bible-kjv", "bible-kjv-text"),
                       "public domain (KJV text, see /usr/share/doc/bible-kjv/copyright)"))
train_docs.append(("The Jargon File 4.4.7", jargon(), pv("jargon-text"),
                   "public domain (see /usr/share/doc/jargon-text/copyright)"))
train_docs.append(("The Debian Administrator's Handbook (en-US)", handbook(), pv("debian-handbook"),
                   "GPL-2.0+ or CC-BY-SA-3.0 (see /usr/share/doc/debian-handbook/copyright)"))

SEP = "\n\n<|endoftext|>\n\n"
texts = {
    "train.txt": SEP.join(d[1] for d in train_docs) + "\n",
    "valid.txt": novel("persuasion") + "\n",
    "test.txt": novel("waroftheworlds") + "\n",
}
for n, t in texts.items():
    if "<|endoftext|>" in t.replace(SEP, ""):
        raise SystemExit("make-corpus: stray <|endoftext|> in " + n)

# ---- summarization pairs from Debian package descriptions ------------------------
def stanzas(path):
    rec, last = {}, None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                if rec:
                    yield rec
                rec, last = {}, None
            elif line[0] in " \t" and last:
                rec[last] += "\n" + line
            else:
                k, _, v = line.partition(":")
                last = k
                rec[k] = v.strip()
    if rec:
        yield rec

src, md5 = {}, {}
for r in stanzas(os.path.join(work, "Packages")):
    p = r.get("Package")
    if p:
        src.setdefault(p, (r.get("Source") or p).split(" ")[0])
        md5.setdefault(p, r.get("Description-md5"))

BULLET = re.compile(r"^([*\-+o\u2022\u00b7#]|\d+[.)]|[a-zA-Z][.)])\s")
def long_desc(lines):
    paras, cur = [], []     # cur: list of [kind, text]
    def flush():
        if cur:
            paras.append("\n".join(t for _, t in cur))
            cur.clear()
    for l in lines:
        s = l[1:] if l.startswith(" ") else l
        if s.strip() == ".":
            flush()
            continue
        if not s.strip():
            continue
        item = " ".join(s.split())
        if s[0] in " \t":                       # verbatim / list line
            if BULLET.match(item):
                cur.append(["list", item])
            elif cur and cur[-1][0] == "list":
                cur[-1][1] += " " + item
            else:
                cur.append(["verb", item])
        elif cur and cur[-1][0] == "text":
            cur[-1][1] += " " + item
        else:
            cur.append(["text", item])
    flush()
    return "\n".join(paras)

cands = {}
for r in stanzas(os.path.join(work, "Translation-en")):
    p, d = r.get("Package"), r.get("Description-en")
    if not p or not d:
        continue
    first, _, rest = d.partition("\n")
    summary = " ".join(first.split())
    doc = long_desc(rest.split("\n")) if rest else ""
    doc = CTRL.sub("", unicodedata.normalize("NFC", doc.replace("\u00a0", " ")))
    summary = CTRL.sub("", unicodedata.normalize("NFC", summary.replace("\u00a0", " ")))
    cands.setdefault(p, []).append((r.get("Description-md5") == md5.get(p),
                                    r.get("Description-md5") or "", summary, doc))

pairs, seen_docs = [], set()
for p in sorted(cands):
    # several descriptions for one package: the one the Packages index uses, else lowest md5
    c = sorted(cands[p], key=lambda x: (not x[0], x[1]))[0]
    summary, doc = c[2], c[3]
    n = len(doc.split())
    if not summary or n < 40 or n > 400 or doc in seen_docs:
        continue
    if REGISTRY.search(doc) or REGISTRY.search(summary):
        dropped["records"] += 1
        continue
    seen_docs.add(doc)
    pairs.append((p, doc, summary))

def bucket(pkg):
    # split on the *source* package so that sibling binaries (libfoo1/libfoo-dev,
    # which share most of their description) never straddle train and test
    h = int(hashlib.sha256(src.get(pkg, pkg).encode("utf-8")).hexdigest()[:8], 16) % 100
    return "train" if h < 90 else ("valid" if h < 95 else "test")

jsonl = {"summ-train.jsonl": [], "summ-valid.jsonl": [], "summ-test.jsonl": []}
for p, doc, summary in pairs:
    jsonl["summ-%s.jsonl" % bucket(p)].append(
        json.dumps({"id": p, "document": doc, "summary": summary}, ensure_ascii=False))
for n, rows in jsonl.items():
    texts[n] = "".join(r + "\n" for r in rows)

# ---- write (gzip -n style: no name, mtime 0) + manifest ---------------------------
def words(t):
    return len(t.split())
def sha(b):
    return hashlib.sha256(b).hexdigest()

info = {}
for n, t in texts.items():
    b = t.encode("utf-8")
    with open(os.path.join(out, n + ".gz"), "wb") as f:
        subprocess.run(["gzip", "-9", "-n", "-c"], input=b, stdout=f, check=True)
    info[n] = (len(b), words(t), sha(b), os.path.getsize(os.path.join(out, n + ".gz")))
    for stale in (os.path.join(out, n),):
        if os.path.exists(stale):
            os.remove(stale)

rel = read(os.path.join(work, "Release")).strip()
rel = "; ".join(l.strip() for l in rel.split("\n") if l.strip())
n_rec = {n: t.count("\n") for n, t in texts.items() if n.endswith(".jsonl")}
tr_sha = sha(open(os.path.join(work, "Translation-en"), "rb").read())

M = []
M.append("# corpus — manifest\n")
M.append("Built by `scripts/make-corpus.sh` from Debian packages (English text only). "
         "Every file is stored compressed with `gzip -9 -n` (no name, no timestamp); sizes, word counts "
         "(whitespace-separated tokens) and sha256 are of the **uncompressed** content. "
         "Text is UTF-8 (NFC), unix newlines, no trailing blanks, at most two consecutive blank "
         "lines; Project Gutenberg headers/footers and notes removed; no-break spaces turned into "
         "spaces. Lines (text) and records (jsonl) that name a package-archive or registry "
         "host (any host in the Debian project's domain, PyPI, CRAN, … — see `REGISTRY` in the script) are left out: "
         "%d text lines, %d jsonl records.\n" % (dropped["lines"], dropped["records"]))
M.append("| file | bytes (uncompressed) | words | sha256 (uncompressed) | .gz bytes |")
M.append("|---|---:|---:|---|---:|")
for n in ["train.txt", "valid.txt", "test.txt", "summ-train.jsonl", "summ-valid.jsonl", "summ-test.jsonl"]:
    b, w, h, gz = info[n]
    M.append("| `%s.gz` | %d | %d | `%s` | %d |" % (n, b, w, h, gz))
M.append("")
M.append("## train.txt\n")
M.append("%d documents in this order, separated by a blank line, a line `<|endoftext|>`, and a "
         "blank line (i.e. the separator is `\\n\\n<|endoftext|>\\n\\n`); the file ends with one "
         "newline. The KJV is one document per biblical book (66)." % len(train_docs))
M.append("")
M.append("| document | source package(s) | licence | bytes | words |")
M.append("|---|---|---|---:|---:|")
groups = []
for title, text, pk, lic in train_docs:
    if title.startswith("The King James Bible: "):
        if groups and groups[-1][0] == "The King James Bible (66 books, Genesis–Revelation)":
            g = groups[-1]
            groups[-1] = (g[0], g[1] + len(text.encode("utf-8")), g[2] + words(text), pk, lic)
            continue
        groups.append(("The King James Bible (66 books, Genesis–Revelation)",
                       len(text.encode("utf-8")), words(text), pk, lic))
    else:
        groups.append((title, len(text.encode("utf-8")), words(text), pk, lic))
for title, b, w, pk, lic in groups:
    M.append("| %s | %s | %s | %d | %d |" % (title, pk, lic, b, w))
M.append("")
M.append("## valid.txt / test.txt\n")
M.append("- `valid.txt`: *Persuasion* (Jane Austen, 1818) — %s; %s." % (
    pv("r-cran-janeaustenr"), PD_R % "r-cran-janeaustenr"))
M.append("- `test.txt`: *The War of the Worlds* (H. G. Wells, 1898; Gutenberg #36, from "
         "`extdata/books.rda`) — %s; %s." % (pv("r-cran-tidytext"), PD_R % "r-cran-tidytext"))
M.append("- Neither book appears in `train.txt`. (*Pride and Prejudice* also ships in "
         "`books.rda`; only the janeaustenr copy is used.)\n")
M.append("## summ-*.jsonl\n")
M.append("One JSON object per line: `{\"id\": package, \"document\": long description, "
         "\"summary\": synopsis}` — Debian package long descriptions (the lines after the synopsis "
         "in `Description-en`) paired with the one-line synopsis. Source: the release suite's "
         "`main` `Translation-en` index (%s; uncompressed sha256 `%s`), i.e. the packages' own "
         "descriptions: each is under the licence of its Debian package, all DFSG-free (Debian "
         "main)." % (rel, tr_sha))
M.append("")
M.append("- document: paragraphs (` .` separators) joined by `\\n`; wrapped lines joined with a "
         "space; indented list items (`*`, `-`, `1.`, …) and other indented lines kept one per "
         "line; whitespace collapsed; NFC.")
M.append("- kept: synopsis non-empty and 40 ≤ words(document) ≤ 400; identical documents "
         "deduplicated (first package name in sort order wins). A package listed twice uses the "
         "description the Packages index points to (Description-md5), else the lowest md5.")
M.append("- order: sorted by package name (byte order) within each file.")
M.append("- split: `int(sha256(source_package_name)[:8 hex], 16) % 100` → <90 train, <95 valid, "
         "else test; the source package comes from the suite's `main` Packages index (binary "
         "package name when absent), so sibling binaries of one source never straddle splits.")
M.append("- records: train %d, valid %d, test %d." % (
    n_rec["summ-train.jsonl"], n_rec["summ-valid.jsonl"], n_rec["summ-test.jsonl"]))
M.append("")
M.append("## Rebuild\n")
M.append("`scripts/make-corpus.sh [OUTDIR]` (root or sudo; `SKIP_APT=1` to reuse installed "
         "packages and apt lists). Text files are reproducible byte-for-byte from the same package "
         "versions; the jsonl files change when the suite's Translation-en changes (point releases).")
with open(os.path.join(out, "MANIFEST.md"), "w", encoding="utf-8") as f:
    f.write("\n".join(M) + "\n")

for n in texts:
    b, w, h, gz = info[n]
    print("%-18s %10d bytes %9d words  gz %9d  %s" % (n, b, w, gz, h))
PYTHON

chmod 755 "$out"   # mktemp's 0700 would keep other users of a shared machine out
mv -T "$out" "$final"
echo "make-corpus: done in $(( $(date +%s) - start ))s -> $final"
