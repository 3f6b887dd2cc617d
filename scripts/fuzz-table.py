#!/usr/bin/env python3
"""Sums fuzz/campaign.tsv (one line per campaign run, written by
`scripts/fuzz.sh campaign`) into the per-target table of docs/FUZZING.md,
rewriting the lines between the CAMPAIGN-TABLE markers."""
import collections, pathlib, sys

root = pathlib.Path(__file__).resolve().parent.parent
rows = collections.OrderedDict()
crashes = collections.defaultdict(int)
for line in (root / "fuzz/campaign.tsv").read_text().splitlines()[1:]:
    f = line.split("\t")
    if len(f) < 4:
        continue
    t = f[1]
    r = rows.setdefault(t, {"runs": 0, "secs": 0, "execs": 0, "cov": 0, "ft": 0, "corpus": 0})
    r["runs"] += 1
    if f[3] == "crash":
        # A crash stops the run at once; its time is not recorded (and
        # not counted).
        crashes[t] += 1
        continue
    # CPU seconds where the run recorded them (8th column), else its
    # length: the first runs of the campaign predate the CPU column.
    r["secs"] += int(f[7]) if len(f) > 7 and f[7].isdigit() else int(f[2])
    r["execs"] += int(f[3]) if f[3].isdigit() else 0
    r["cov"] = max(r["cov"], int(f[4]) if f[4].isdigit() else 0)
    r["ft"] = max(r["ft"], int(f[5]) if f[5].isdigit() else 0)
    r["corpus"] = int(f[6]) if f[6].isdigit() else r["corpus"]

targets = sorted(p.stem for p in (root / "fuzz/fuzz_targets").glob("*.rs"))
out = ["| target | runs | CPU time | executions | edges (cov) | features (ft) | corpus files (last run) | crashes found |", "|---|---|---|---|---|---|---|---|"]
for t in targets:
    r = rows.get(t, {"runs": 0, "secs": 0, "execs": 0, "cov": 0, "ft": 0, "corpus": 0})
    committed = len(list((root / "fuzz/corpus" / t).glob("*"))) if (root / "fuzz/corpus" / t).is_dir() else 0
    h, m = divmod(r["secs"] // 60, 60)
    out.append(f"| {t} | {r['runs']} | {h} h {m:02d} min | {r['execs']:,} | {r['cov']:,} | {r['ft']:,} | {r['corpus']:,} (committed, minimized: {committed:,}) | {crashes.get(t, 0)} |")
total = sum(r["secs"] for r in rows.values())
out.append("")
out.append(f"Total: {total // 3600} h {total % 3600 // 60:02d} min of fuzzing over {sum(r['runs'] for r in rows.values())} runs.")

doc = root / "docs/FUZZING.md"
text = doc.read_text()
start, end = "<!-- CAMPAIGN-TABLE -->", "<!-- /CAMPAIGN-TABLE -->"
a, b = text.index(start) + len(start), text.index(end)
doc.write_text(text[:a] + "\n" + "\n".join(out) + "\n" + text[b:])
print("\n".join(out))
