// A pprof profile (gzipped profile.proto) read by npm pprof-format, the reader
// of the npm pprof package, printed as JSON for tests/export_check.py:
// strings, samples [location ids leaf first, value], location id -> function
// id, function id -> name index.
import { Profile } from 'pprof-format';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

const p = Profile.decode(gunzipSync(readFileSync(process.argv[2])));
const n = (x) => Number(x);
const out = {
  strings: p.stringTable.strings,
  samples: p.sample.map((s) => [s.locationId.map(n), n(s.value[0])]),
  locations: Object.fromEntries(p.location.map((l) => [n(l.id), n(l.line[0].functionId)])),
  functions: Object.fromEntries(p.function.map((f) => [n(f.id), n(f.name)])),
};
process.stdout.write(JSON.stringify(out));
