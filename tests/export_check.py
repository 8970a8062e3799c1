"""Every export format holds the same samples as the folded-stacks export.

    export_check.py LUMIO NODE_DIR SRC_DIR OUT_DIR [--profiles DIR]

On `lumio stream gen` profiles (and, with --profiles, on the real `perf
script` profiles imported with `lumio stream import --from perf-script`),
exports each stream --to collapsed, speedscope, gecko and pprof, decodes
each with a reader of its own and checks the same total, the same count per
leaf function and per full stack as collapsed:
  - speedscope: Python's json, validated against the file-format-schema.json
    of npm speedscope; two of them also opened by speedscope's own app in
    Debian's headless chromium (tests/node/speedscope_open.mjs), which must
    show the first thread's name and its top functions; screenshots in OUT_DIR;
  - gecko: Python's json, through a structural checker (indices in range,
    prefixes before use, column lengths, times nondecreasing);
  - pprof: Debian's `protoc --decode` (text) and npm pprof-format's
    Profile.decode in node.
Exits 0, or 1 naming the first difference."""

import collections
import gzip
import json
import os
import subprocess
import sys
import tempfile

LUMIO, NODE_DIR, SRC, OUT_DIR = sys.argv[1:5]
PROFILES = sys.argv[sys.argv.index("--profiles") + 1] if "--profiles" in sys.argv else None
failures = 0


def fail(what):
    global failures
    failures += 1
    print("FAIL:", what)


def run(*args, **kw):
    return subprocess.run(args, check=True, timeout=600, **kw)


def folded_name(s):
    """A name as the collapsed export writes it."""
    return s.replace(";", ":").replace("\n", " ").replace("\r", " ")


def key(names):
    """A stack (root first) as collapsed's stack text."""
    return ";".join(folded_name(n) for n in names) if names else "[empty]"


def read_collapsed(path):
    c = collections.Counter()
    with open(path, encoding="utf-8", errors="strict") as f:
        for line in f:
            stack, _, n = line.rstrip("\n").rpartition(" ")
            c[stack] += int(n)
    return c


# ---- speedscope -------------------------------------------------------------

def validate(schema, node, value, where):
    """The JSON Schema keywords speedscope's schema uses."""
    if "$ref" in node:
        name = node["$ref"].split("/")[-1]
        return validate(schema, schema["definitions"][name], value, where)
    if "anyOf" in node:
        if not any(not validate(schema, n, value, where) for n in node["anyOf"]):
            return [f"{where}: matches none of anyOf"]
        return []
    errs = []
    t = node.get("type")
    types = {"object": dict, "array": list, "string": str, "boolean": bool}
    if t == "number" and (not isinstance(value, (int, float)) or isinstance(value, bool)):
        return [f"{where}: not a number"]
    if t in types and not isinstance(value, types[t]):
        return [f"{where}: not {t}"]
    if "enum" in node and value not in node["enum"]:
        errs.append(f"{where}: {value!r} not in {node['enum']}")
    if "const" in node and value != node["const"]:
        errs.append(f"{where}: {value!r} is not {node['const']!r}")
    if t == "object":
        for r in node.get("required", []):
            if r not in value:
                errs.append(f"{where}: no {r}")
        for k, sub in node.get("properties", {}).items():
            if k in value:
                errs += validate(schema, sub, value[k], f"{where}.{k}")
    if t == "array" and "items" in node:
        for i, v in enumerate(value):
            errs += validate(schema, node["items"], v, f"{where}[{i}]")
            if errs:
                break
    return errs


def open_in_browser(path, doc):
    """speedscope's app shows the first profile's name and top functions."""
    frames, first = doc["shared"]["frames"], doc["profiles"][0]
    self_counts = collections.Counter(frames[s[-1]]["name"] for s in first["samples"] if s)
    title = f"{first['name']} (1/{len(doc['profiles'])})" if len(doc["profiles"]) > 1 else first["name"]
    shot = os.path.join(OUT_DIR, os.path.basename(path) + ".png")
    r = subprocess.run(["node", os.path.join(NODE_DIR, "speedscope_open.mjs"), path, shot, title,
                        *[n for n, _ in self_counts.most_common(3)]],
                       timeout=180, capture_output=True, text=True)
    print(r.stdout.strip())
    if r.returncode != 0:
        fail(f"{path}: speedscope's app: exit {r.returncode} {r.stderr[-500:]}")


def check_speedscope(path, browser=False):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    schema_path = os.path.join(NODE_DIR, "node_modules/speedscope/dist/release/file-format-schema.json")
    with open(schema_path) as f:
        schema = json.load(f)
    for e in validate(schema, schema, doc, "$")[:5]:
        fail(f"{path}: schema: {e}")
    frames = doc["shared"]["frames"]
    c = collections.Counter()
    for p in doc["profiles"]:
        if len(p["samples"]) != len(p["weights"]):
            fail(f"{path}: {p['name']}: samples and weights differ in length")
        w = set(p["weights"])
        if len(w) > 1:
            fail(f"{path}: {p['name']}: weights differ ({sorted(w)[:3]})")
        if p["endValue"] - p["startValue"] != sum(p["weights"]):
            fail(f"{path}: {p['name']}: endValue - startValue is not the total weight")
        for s in p["samples"]:
            c[key([frames[i]["name"] for i in s])] += 1
    if browser:
        open_in_browser(path, doc)
    return c


# ---- gecko ------------------------------------------------------------------

def check_gecko(path):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    meta = doc["meta"]
    if meta.get("preprocessedProfileVersion") != 57 or meta.get("version") != 32:
        fail(f"{path}: versions {meta.get('preprocessedProfileVersion')}/{meta.get('version')}")
    for k in ("interval", "startTime", "categories", "product", "importedFrom"):
        if k not in meta:
            fail(f"{path}: meta has no {k}")
    strings = doc["shared"]["stringArray"]
    ncat = len(meta["categories"])
    c = collections.Counter()
    for t in doc["threads"]:
        where = f"{path}: thread {t.get('name')!r}"
        tables = {n: t[n] for n in ("samples", "stackTable", "frameTable", "funcTable",
                                    "resourceTable", "nativeSymbols", "markers")}
        for tname, table in tables.items():
            for col, v in table.items():
                if isinstance(v, list) and len(v) != table["length"]:
                    fail(f"{where}: {tname}.{col} has {len(v)} entries, length {table['length']}")

        def idx(v, n, what, null=False):
            if v is None and null:
                return
            if not isinstance(v, int) or not 0 <= v < n:
                fail(f"{where}: {what} {v!r} out of range 0..{n - 1}")

        st, ft, fn, rt = (tables[n] for n in ("stackTable", "frameTable", "funcTable", "resourceTable"))
        for i in range(st["length"]):
            idx(st["frame"][i], ft["length"], "stackTable.frame")
            p = st["prefix"][i]
            if p is not None and not (isinstance(p, int) and 0 <= p < i):
                fail(f"{where}: stack {i}'s prefix {p} is not before it")
        for i in range(ft["length"]):
            idx(ft["func"][i], fn["length"], "frameTable.func")
            idx(ft["category"][i], ncat, "frameTable.category")
        for i in range(fn["length"]):
            idx(fn["name"][i], len(strings), "funcTable.name")
            idx(fn["fileName"][i], len(strings), "funcTable.fileName", null=True)
            idx(fn["resource"][i], rt["length"], "funcTable.resource")
        for i in range(rt["length"]):
            idx(rt["name"][i], len(strings), "resourceTable.name")
        sm = tables["samples"]
        times = sm["time"]
        if any(b < a for a, b in zip(times, times[1:])):
            fail(f"{where}: sample times decrease")
        for s in sm["stack"]:
            idx(s, st["length"], "samples.stack", null=True)
            names = []
            while s is not None:
                names.append(strings[fn["name"][ft["func"][st["frame"][s]]]])
                s = st["prefix"][s]
            c[key(names[::-1])] += 1
        if failures:
            break
    return c


# ---- pprof ------------------------------------------------------------------

def unescape(s):
    """A protoc text-format string's escapes into bytes, then UTF-8."""
    out, i = bytearray(), 0
    simple = {"n": 10, "r": 13, "t": 9, '"': 34, "'": 39, "\\": 92, "a": 7, "b": 8, "f": 12, "v": 11}
    while i < len(s):
        ch = s[i]
        if ch != "\\":
            out += ch.encode()
            i += 1
        elif s[i + 1] in simple:
            out.append(simple[s[i + 1]])
            i += 2
        elif s[i + 1] == "x":
            j = i + 2
            while j < len(s) and j < i + 4 and s[j] in "0123456789abcdefABCDEF":
                j += 1
            out.append(int(s[i + 2:j], 16))
            i = j
        else:
            j = i + 1
            while j < len(s) and j < i + 4 and s[j] in "01234567":
                j += 1
            out.append(int(s[i + 1:j], 8))
            i = j
    return out.decode("utf-8", errors="replace")


def parse_text(text):
    """protoc's text format into nested dicts of lists."""
    root, stack = collections.defaultdict(list), []
    cur = root
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.endswith("{"):
            child = collections.defaultdict(list)
            cur[line[:-1].strip()].append(child)
            stack.append(cur)
            cur = child
        elif line == "}":
            cur = stack.pop()
        else:
            k, _, v = line.partition(": ")
            cur[k].append(unescape(v[1:-1]) if v.startswith('"') else int(v))
    return root


def pprof_counts(strings, samples, locations, functions):
    """samples: (location ids leaf first, value); locations: id -> function
    id; functions: id -> name index."""
    c = collections.Counter()
    for locs, v in samples:
        c[key([strings[functions[locations[l]]] for l in reversed(locs)])] += v
    return c


def check_pprof_protoc(path, proto_dir):
    with gzip.open(path) as f:
        raw = f.read()
    text = run("protoc", "--proto_path=" + proto_dir, "--decode=lumio.pprof.Profile",
               "stream/pprof.proto", input=raw, capture_output=True).stdout.decode()
    p = parse_text(text)
    strings = p["string_table"]
    if strings[:1] != [""]:
        fail(f"{path}: string_table[0] is not empty")
    st = p["sample_type"]
    if len(st) != 1 or [strings[st[0]["type"][0]], strings[st[0]["unit"][0]]] != ["samples", "count"]:
        fail(f"{path}: sample_type is not one (samples, count)")
    pt = p["period_type"][0]
    if [strings[pt["type"][0]], strings[pt["unit"][0]]] != ["wall", "microseconds"]:
        fail(f"{path}: period_type is not wall/microseconds")
    funcs = {f["id"][0]: f["name"][0] for f in p["function"]}
    locs = {}
    for l in p["location"]:
        if len(l["line"]) != 1:
            fail(f"{path}: location {l['id'][0]} has {len(l['line'])} lines")
        locs[l["id"][0]] = l["line"][0]["function_id"][0]
    return pprof_counts(strings, [(s["location_id"], s["value"][0]) for s in p["sample"]],
                        locs, funcs)


def check_pprof_node(path):
    script = os.path.join(NODE_DIR, "pprof_decode.mjs")
    out = json.loads(run("node", script, path, capture_output=True).stdout)
    locs = {int(k): v for k, v in out["locations"].items()}
    funcs = {int(k): v for k, v in out["functions"].items()}
    return pprof_counts(out["strings"], out["samples"], locs, funcs)


# ---- the comparison -----------------------------------------------------------

def leaves(c):
    out = collections.Counter()
    for stack, n in c.items():
        out[stack.rpartition(";")[2]] += n
    return out


def same(what, want, got):
    if sum(want.values()) != sum(got.values()):
        return fail(f"{what}: {sum(got.values())} samples, collapsed has {sum(want.values())}")
    if leaves(want) != leaves(got):
        d = (leaves(want) - leaves(got)) + (leaves(got) - leaves(want))
        return fail(f"{what}: leaf counts differ, e.g. {list(d.items())[:3]}")
    if want != got:
        d = (want - got) + (got - want)
        return fail(f"{what}: stack counts differ, e.g. {list(d.items())[:2]}")
    print(f"ok: {what}: {sum(got.values())} samples, {len(got)} stacks")


def check_stream(stream, work, browser):
    name = os.path.basename(stream)
    out = {}
    for fmt in ("collapsed", "speedscope", "gecko", "pprof"):
        out[fmt] = os.path.join(work, f"{name}.{fmt}")
        run(LUMIO, "stream", "export", "--to", fmt, stream, "-o", out[fmt])
    want = read_collapsed(out["collapsed"])
    same(f"{name} speedscope", want, check_speedscope(out["speedscope"], browser))
    same(f"{name} gecko", want, check_gecko(out["gecko"]))
    same(f"{name} pprof (protoc)", want, check_pprof_protoc(out["pprof"], os.path.join(SRC, "src")))
    same(f"{name} pprof (pprof-format)", want, check_pprof_node(out["pprof"]))


def main():
    with tempfile.TemporaryDirectory() as work:
        streams = []
        for seed, samples, threads, depth in ((1, 5000, 3, 20), (7, 20000, 40, 64), (3, 300, 1, 2)):
            p = os.path.join(work, f"gen-{seed}.lumio")
            run(LUMIO, "stream", "gen", "--seed", str(seed), "--samples", str(samples),
                "--threads", str(threads), "--depth", str(depth), "-o", p,
                stderr=subprocess.DEVNULL)
            streams.append(p)
        for f in sorted(os.listdir(PROFILES)) if PROFILES else []:
            if not f.endswith(".perf.txt.zst"):
                continue
            p = os.path.join(work, f.replace(".perf.txt.zst", ".lumio"))
            text = run("zstd", "-dc", os.path.join(PROFILES, f), capture_output=True).stdout
            run(LUMIO, "stream", "import", "--from", "perf-script", "-", "-o", p, input=text)
            streams.append(p)
        os.makedirs(OUT_DIR, exist_ok=True)
        for s in streams:
            check_stream(s, work, os.path.basename(s) in ("gen-1.lumio", "python-json.lumio"))
    print("export_check:", "FAILED" if failures else "passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
