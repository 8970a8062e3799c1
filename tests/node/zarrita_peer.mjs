// zarrita (a JavaScript Zarr v3 implementation) as lumio's peer.
//   node zarrita_peer.mjs read ARRAY OUT      all of ARRAY as raw little-endian values into OUT
//   node zarrita_peer.mjs write ARRAY SPEC IN  create ARRAY as SPEC (JSON: shape, chunk_shape,
//                                              data_type, codecs, fill_value) from IN (raw
//                                              little-endian values, C order)
//   node zarrita_peer.mjs group GROUP          create GROUP with arrays a and sub/b, and
//                                              an empty subgroup e
import * as fs from "node:fs";
import * as zarr from "zarrita";
import FileSystemStore from "@zarrita/storage/fs";

const TYPED = {
    int8: Int8Array, int16: Int16Array, int32: Int32Array, int64: BigInt64Array,
    uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array, uint64: BigUint64Array,
    float32: Float32Array, float64: Float64Array,
};

function rawBytes(data) {
    // zarrita hands out native (little-endian) typed arrays; bool as a BoolArray.
    const src = data.data ?? data;
    if (src.buffer && src.byteLength !== undefined)
        return Buffer.from(src.buffer, src.byteOffset, src.byteLength);
    return Buffer.from(Array.from(src, (v) => (v ? 1 : 0)));
}

// zarrita may hand back a strided view (an F-ordered array): copy it to C order.
function cOrder(chunk) {
    const { data, shape, stride } = chunk;
    const n = shape.reduce((x, y) => x * y, 1);
    let c = 1, contiguous = true;
    for (let d = shape.length - 1; d >= 0; d--) {
        if (shape[d] > 1 && stride[d] !== c) contiguous = false;
        c *= shape[d];
    }
    if (contiguous) return chunk;
    const out = new data.constructor(n);
    const idx = new Array(shape.length).fill(0);
    for (let i = 0; i < n; i++) {
        let off = 0;
        for (let d = 0; d < shape.length; d++) off += idx[d] * stride[d];
        out[i] = data[off];
        for (let d = shape.length - 1; d >= 0; d--) {
            if (++idx[d] < shape[d]) break;
            idx[d] = 0;
        }
    }
    return { data: out };
}

const [mode, path, a, b] = process.argv.slice(2);
const store = new FileSystemStore(path);
if (mode === "read") {
    const arr = await zarr.open.v3(zarr.root(store), { kind: "array" });
    const chunk = await zarr.get(arr);
    fs.writeFileSync(a, rawBytes(cOrder(chunk)));
} else if (mode === "write") {
    const spec = JSON.parse(fs.readFileSync(a, "utf8"));
    const arr = await zarr.create(zarr.root(store), {
        shape: spec.shape, chunkShape: spec.chunk_shape, dtype: spec.data_type,
        codecs: spec.codecs, fillValue: spec.fill_value,
    });
    const raw = fs.readFileSync(b);
    const buf = raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength);
    const T = TYPED[spec.data_type];
    const values = T ? new T(buf) : new Uint8Array(buf);
    const stride = [];
    let s = 1;
    for (let d = spec.shape.length - 1; d >= 0; d--) { stride[d] = s; s *= spec.shape[d]; }
    await zarr.set(arr, null, { data: values, shape: spec.shape, stride });
} else if (mode === "group") {
    const root = await zarr.create(zarr.root(store));
    await zarr.create(root.resolve("sub"));
    await zarr.create(root.resolve("e"));
    await zarr.create(root.resolve("a"), { shape: [4], chunkShape: [2], dtype: "int32" });
    await zarr.create(root.resolve("sub/b"), { shape: [3, 3], chunkShape: [2, 2], dtype: "uint8" });
} else {
    console.error("usage: zarrita_peer.mjs read ARRAY OUT | write ARRAY SPEC IN | group GROUP");
    process.exit(2);
}
