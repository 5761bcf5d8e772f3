#!/usr/bin/env node
// Runs an ONNX model in onnxruntime-node (CPU execution provider) for kmidi's
// export checks and latency measurements. Called by onnx/check/OrtRunner.cpp;
// usable by hand:
//
//   node scripts/ort_run.js MODEL.onnx REQUEST.json
//
// REQUEST.json:
//   {
//     "inputs": [{"name": "x", "dtype": "float32", "shape": [2, 3], "file": "x.bin"}, ...],
//     "output_dir": "out",             // outputs.json and out_<i>.bin land here
//     "intra_op_threads": 1,           // optional, default 1
//     "graph_optimization": "all",     // optional: all | extended | basic | disabled
//     "timing": {"warmup": 5, "runs": 50}   // optional: time runs instead of one run
//   }
// Relative paths are relative to the request file's folder. Raw files hold
// little-endian, row-major element data (bool: one byte per element).
//
// outputs.json: {"outputs": [{"name", "dtype", "shape", "file"}], in the
// graph's output order} and, in timing mode, "timing": {"warmup", "runs",
// "median_ms", "p90_ms", "runs_ms"}.
//
// onnxruntime-node is loaded from $KMIDI_NODE_MODULES, else from the
// node_modules folder beside this script's parent.
//
// Exit codes: 0 ok, 2 bad request, 3 onnxruntime refused the model or the run,
// 4 onnxruntime-node cannot be loaded.
'use strict';

const fs = require('fs');
const path = require('path');

function die(code, message) {
  process.stderr.write(`ort_run: ${message}\n`);
  process.exit(code);
}

const TYPED_ARRAYS = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  int64: BigInt64Array,
  int32: Int32Array,
  int16: Int16Array,
  int8: Int8Array,
  uint8: Uint8Array,
  bool: Uint8Array,
};

function loadOrt() {
  const dir = process.env.KMIDI_NODE_MODULES || path.join(__dirname, '..', 'node_modules');
  const modulePath = path.join(dir, 'onnxruntime-node');
  try {
    return require(modulePath);
  } catch (e) {
    die(4, `cannot load onnxruntime-node from ${modulePath}: ${e.message}`);
  }
  return null;
}

function readInput(spec, baseDir, ort) {
  const where = `input '${spec.name}'`;
  const ArrayType = TYPED_ARRAYS[spec.dtype];
  if (!ArrayType) die(2, `${where}: unknown dtype '${spec.dtype}'`);
  if (!Array.isArray(spec.shape)) die(2, `${where}: shape must be an array`);
  const numel = spec.shape.reduce((a, b) => a * b, 1);
  const file = path.resolve(baseDir, spec.file);
  let buf;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    die(2, `${where}: cannot read ${file}: ${e.message}`);
  }
  const expected = numel * ArrayType.BYTES_PER_ELEMENT;
  if (buf.length !== expected) {
    die(2, `${where}: ${file} holds ${buf.length} bytes; expected ${expected} for ${spec.dtype} [${spec.shape}]`);
  }
  // Copy into a fresh, aligned buffer: Buffers may sit at any offset of a pool.
  const data = new ArrayType(numel);
  new Uint8Array(data.buffer).set(buf);
  return new ort.Tensor(spec.dtype, data, spec.shape);
}

function percentile(sorted, q) {
  // Linear interpolation between closest ranks (numpy's default).
  if (sorted.length === 1) return sorted[0];
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

async function main() {
  const args = process.argv.slice(2);
  if (args.length !== 2 || args[0] === '--help' || args[0] === '-h') {
    die(2, 'usage: node ort_run.js MODEL.onnx REQUEST.json');
  }
  const [modelPath, requestPath] = args;
  let request;
  try {
    request = JSON.parse(fs.readFileSync(requestPath, 'utf8'));
  } catch (e) {
    die(2, `cannot read request ${requestPath}: ${e.message}`);
  }
  const baseDir = path.dirname(path.resolve(requestPath));
  if (!Array.isArray(request.inputs)) die(2, `${requestPath}: "inputs" must be an array`);
  if (typeof request.output_dir !== 'string') die(2, `${requestPath}: "output_dir" must be a string`);
  const threads = request.intra_op_threads === undefined ? 1 : request.intra_op_threads;
  if (!Number.isInteger(threads) || threads < 0) die(2, `${requestPath}: "intra_op_threads" must be an integer >= 0`);
  const optimization = request.graph_optimization || 'all';
  if (!['all', 'extended', 'basic', 'disabled'].includes(optimization)) {
    die(2, `${requestPath}: unknown graph_optimization '${optimization}'`);
  }

  const ort = loadOrt();
  const feeds = {};
  for (const spec of request.inputs) feeds[spec.name] = readInput(spec, baseDir, ort);

  let session;
  try {
    session = await ort.InferenceSession.create(modelPath, {
      executionProviders: ['cpu'],
      graphOptimizationLevel: optimization,
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
    });
  } catch (e) {
    die(3, `onnxruntime cannot load ${modelPath}: ${e.message}`);
  }

  const missing = session.inputNames.filter((n) => !(n in feeds));
  const unexpected = Object.keys(feeds).filter((n) => !session.inputNames.includes(n));
  if (missing.length || unexpected.length) {
    die(3, `inputs do not match ${modelPath}: missing [${missing.join(', ')}], unexpected [${unexpected.join(', ')}]; ` +
        `the graph takes [${session.inputNames.join(', ')}]`);
  }

  const run = async () => {
    try {
      return await session.run(feeds);
    } catch (e) {
      die(3, `onnxruntime failed to run ${modelPath}: ${e.message}`);
    }
    return null;
  };

  let timing;
  let results;
  if (request.timing) {
    const warmup = request.timing.warmup === undefined ? 5 : request.timing.warmup;
    const runs = request.timing.runs === undefined ? 50 : request.timing.runs;
    if (!Number.isInteger(warmup) || warmup < 0 || !Number.isInteger(runs) || runs < 1) {
      die(2, `${requestPath}: timing needs integers warmup >= 0 and runs >= 1`);
    }
    for (let i = 0; i < warmup; ++i) results = await run();
    const times = [];
    for (let i = 0; i < runs; ++i) {
      // Collect the previous runs' outputs first (node runs with --expose-gc):
      // otherwise fresh multi-megabyte output buffers (the incremental graph's
      // present keys and values) make some runs pay for the JS heap, not the model.
      if (typeof global.gc === 'function') global.gc();
      const start = process.hrtime.bigint();
      results = await run();
      times.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
    const sorted = [...times].sort((a, b) => a - b);
    timing = { warmup, runs, median_ms: percentile(sorted, 0.5), p90_ms: percentile(sorted, 0.9), runs_ms: times };
  } else {
    results = await run();
  }

  const outDir = path.resolve(baseDir, request.output_dir);
  fs.mkdirSync(outDir, { recursive: true });
  const outputs = session.outputNames.map((name, i) => {
    const tensor = results[name];
    const file = `out_${i}.bin`;
    const data = tensor.data;
    fs.writeFileSync(path.join(outDir, file), Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    return { name, dtype: tensor.type, shape: tensor.dims.map(Number), file };
  });
  const listing = { outputs };
  if (timing) listing.timing = timing;
  // outputs.json last: its presence means every data file is complete.
  fs.writeFileSync(path.join(outDir, 'outputs.json'), JSON.stringify(listing));
}

main().catch((e) => die(3, e && e.stack ? e.stack : String(e)));
