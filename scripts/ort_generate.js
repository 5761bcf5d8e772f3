#!/usr/bin/env node
// Generates pieces from kmidi's exported generator in onnxruntime-node, the
// way a runtime engine would: the incremental (KV-cache) graph, the grammar
// mask and the tokenizer read from the file's metadata, classifier-free
// guidance, and kmidi generate's sampling options and defaults. A checking
// tool (kmidi evaluate-generation --pieces judges what it writes), never on
// the product's path.
//
//   node scripts/ort_generate.js --model DIR/<model>_incremental.onnx --out OUT
//        [--quadrants | --emotion V,A[,I]] [--count N] [--seed S] [--max-tokens N]
//        [--temperature T] [--top-k K] [--top-p P] [--repetition-penalty R] [--guidance G]
//        [--threads N]
//
// --quadrants writes OUT/Q1..Q4/000.tokens.json ... for the vectors kmidi
// evaluate-generation asks for (Q1 (+0.8, +0.8), Q2 (-0.8, +0.8),
// Q3 (-0.8, -0.8), Q4 (+0.8, -0.8)); --emotion (default 0,0) writes
// OUT/000.tokens.json ... Piece i uses seed S+i, as in kmidi generate.
// A piece file: {"format": "kmidi.tokens", "version": 1, "ids": [BOS, ...],
// "seed", "emotion", "guidance", "ended_with_eos"}; OUT/generation.json
// records the model, its kmidi.train_step and the options.
//
// Sampling follows models/Sampling.cpp step for step in float32 (repetition
// penalty, banned specials, grammar mask, temperature, top-k, softmax,
// top-p) and draws like LibTorch 1.13's CPU multinomial without MKL:
// argmax(p / q) with q ~ Exp(1) per vocabulary entry from an mt19937 seeded
// with the piece's seed. With the same seed it therefore picks the same
// tokens as kmidi generate, except where onnxruntime's and LibTorch's logits
// differ enough (float rounding) to flip a choice.
//
// Exit codes: 0 ok, 2 bad usage or a model without the generator's metadata,
// 3 onnxruntime failed, 4 onnxruntime-node cannot be loaded.
'use strict';

const fs = require('fs');
const path = require('path');

function die(code, message) {
  process.stderr.write(`ort_generate: ${message}\n`);
  process.exit(code);
}

// ---------------------------------------------------------------- options

const DEFAULTS = {  // kmidi generate's defaults (models/Sampling.h)
  temperature: 0.85, topK: 40, topP: 0.92, repetitionPenalty: 1.1, maxTokens: 256, seed: 0, guidance: 1.0,
};
const QUADRANTS = [['Q1', 0.8, 0.8], ['Q2', -0.8, 0.8], ['Q3', -0.8, -0.8], ['Q4', 0.8, -0.8]];

function parseArgs(argv) {
  const o = { ...DEFAULTS, count: 1, emotion: '0,0', quadrants: false, threads: 1 };
  const numbers = {
    '--temperature': 'temperature', '--top-k': 'topK', '--top-p': 'topP', '--repetition-penalty': 'repetitionPenalty',
    '--max-tokens': 'maxTokens', '--seed': 'seed', '--guidance': 'guidance', '--count': 'count', '--threads': 'threads',
  };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) die(2, `${a} needs a value`);
      return argv[++i];
    };
    if (a === '--model') o.model = value();
    else if (a === '--out') o.out = value();
    else if (a === '--emotion') o.emotion = value();
    else if (a === '--quadrants') o.quadrants = true;
    else if (a in numbers) {
      const text = value();
      const n = Number(text);
      if (text.trim() === '' || !Number.isFinite(n)) die(2, `${a}: '${text}' is not a number`);
      o[numbers[a]] = n;
    } else die(2, `unknown argument '${a}'; see the usage at the top of ${__filename}`);
  }
  if (!o.model) die(2, '--model FILE (the generator\'s incremental graph) is required');
  if (!o.out) die(2, '--out DIR is required');
  const rules = [
    [o.temperature > 0, `--temperature must be > 0, got ${o.temperature}`],
    [Number.isInteger(o.topK) && o.topK >= 0, `--top-k must be an integer >= 0 (0 disables), got ${o.topK}`],
    [o.topP > 0 && o.topP <= 1, `--top-p must be in (0, 1], got ${o.topP}`],
    [o.repetitionPenalty >= 1, `--repetition-penalty must be >= 1, got ${o.repetitionPenalty}`],
    [Number.isInteger(o.maxTokens) && o.maxTokens > 0, `--max-tokens must be a positive integer, got ${o.maxTokens}`],
    [Number.isInteger(o.seed) && o.seed >= 0 && o.seed < 2 ** 32, `--seed must be an integer in [0, 2^32), got ${o.seed}`],
    [o.guidance >= 0, `--guidance must be >= 0 (1: off), got ${o.guidance}`],
    [Number.isInteger(o.count) && o.count >= 1, `--count must be at least 1, got ${o.count}`],
    [Number.isInteger(o.threads) && o.threads >= 0, `--threads must be an integer >= 0, got ${o.threads}`],
  ];
  for (const [ok, message] of rules) if (!ok) die(2, message);
  if (o.quadrants && argv.includes('--emotion')) die(2, 'give --quadrants or --emotion, not both');
  return o;
}

/// "V,A[,I]" -> [v, a, i], each in [-1, 1] (kmidi generate's --emotion).
function parseEmotion(text) {
  const parts = text.split(',');
  if (parts.length < 2 || parts.length > 3) die(2, `--emotion: expected V,A or V,A,I (each in [-1, 1]), got '${text}'`);
  return parts.map((p) => {
    const v = Number(p);
    if (p.trim() === '' || !Number.isFinite(v) || v < -1 || v > 1) die(2, `--emotion: '${p}' is not a number in [-1, 1]`);
    return v;
  });
}

// ---------------------------------------------------------------- metadata

/// metadata_props of an ONNX file (ModelProto field 14: StringStringEntryProto
/// {key = 1, value = 2}), read from the protobuf wire format directly:
/// onnxruntime-node does not expose custom metadata.
function readMetadata(file) {
  const buf = fs.readFileSync(file);
  const varint = (state) => {
    let result = 0;
    let scale = 1;
    for (;;) {
      if (state.pos >= state.end) throw new Error(`${file}: truncated protobuf varint`);
      const byte = buf[state.pos++];
      result += (byte & 0x7f) * scale;
      if (byte < 0x80) return result;
      scale *= 128;
    }
  };
  // Calls visit(field, begin, end) for length-delimited fields; skips the others.
  const fields = (begin, end, visit) => {
    const state = { pos: begin, end };
    while (state.pos < end) {
      const tag = varint(state);
      const field = Math.floor(tag / 8);
      const wire = tag % 8;
      if (wire === 0) varint(state);
      else if (wire === 1) state.pos += 8;
      else if (wire === 5) state.pos += 4;
      else if (wire === 2) {
        const length = varint(state);
        visit(field, state.pos, state.pos + length);
        state.pos += length;
      } else throw new Error(`${file}: unsupported protobuf wire type ${wire}`);
    }
  };
  const metadata = {};
  fields(0, buf.length, (field, begin, end) => {
    if (field !== 14) return;
    const entry = {};
    fields(begin, end, (f, b, e) => { entry[f] = buf.toString('utf8', b, e); });
    metadata[entry[1] || ''] = entry[2] || '';
  });
  return metadata;
}

// ---------------------------------------------------------------- grammar

/// datasets/tokenizer/Grammar.h's GrammarCursor over tokenizer.json's "grammar".
class GrammarCursor {
  constructor(grammar) {
    if (grammar.format !== 'kmidi.grammar') throw new Error(`grammar.format is '${grammar.format}'`);
    if (grammar.version > 1) throw new Error(`grammar.version ${grammar.version} is newer than this script reads (1)`);
    this.index = new Map(grammar.states.map((s, i) => [s.name, i]));
    this.states = grammar.states.map((s) => s.allow.map((t) => ({
      first: t.ids[0], last: t.ids[1], next: this.index.get(t.next), effect: t.effect || '',
    })));
    this.names = grammar.states.map((s) => s.name);
    this.tsFirst = grammar.bar_steps.time_signature_ids ? grammar.bar_steps.time_signature_ids[0] : 0;
    this.tsSteps = grammar.bar_steps.steps || [];
    this.state = this.index.get(grammar.start);
    this.lastPosition = -1;
    this.barSteps = grammar.bar_steps.initial;
  }

  openIds(t) {
    if (t.effect !== 'position') return [t.first, t.last];
    return [t.first + this.lastPosition + 1, Math.min(t.last, t.first + this.barSteps - 1)];
  }

  advance(id) {
    for (const t of this.states[this.state]) {
      const [first, last] = this.openIds(t);
      if (id < first || id > last) continue;
      if (t.effect === 'bar') this.lastPosition = -1;
      else if (t.effect === 'time_signature') this.barSteps = this.tsSteps[id - this.tsFirst];
      else if (t.effect === 'position') this.lastPosition = id - t.first;
      this.state = t.next;
      return true;
    }
    return false;
  }

  allowed(mask) {
    mask.fill(0);
    for (const t of this.states[this.state]) {
      const [first, last] = this.openIds(t);
      for (let id = first; id <= last; ++id) mask[id] = 1;
    }
  }

  complete() { return this.states[this.state].length === 0; }
  stateName() { return this.names[this.state]; }
}

// ---------------------------------------------------------------- LibTorch's CPU random numbers

/// at::mt19937 (the standard 32-bit Mersenne Twister) as CPUGeneratorImpl seeds it.
class MT19937 {
  constructor(seed) {
    this.mt = new Uint32Array(624);
    this.mt[0] = seed >>> 0;
    for (let i = 1; i < 624; ++i) {
      const prev = this.mt[i - 1] ^ (this.mt[i - 1] >>> 30);
      this.mt[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
    this.index = 624;
  }

  next32() {
    const mt = this.mt;
    if (this.index >= 624) {
      for (let i = 0; i < 624; ++i) {
        const y = (mt[i] & 0x80000000) | (mt[(i + 1) % 624] & 0x7fffffff);
        mt[i] = mt[(i + 397) % 624] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      }
      this.index = 0;
    }
    let y = mt[this.index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /// uniform_real_distribution<double>(0, 1) over random64() = (first << 32) | second, 53 bits kept.
  uniform() {
    const hi = this.next32();
    const lo = this.next32();
    return ((hi & 0x1fffff) * 4294967296 + lo) / 9007199254740992;
  }
}

/// torch::multinomial(probs, 1, false, gen) on CPU: argmax(p / q), q ~ Exp(1)
/// drawn in double for every entry in order and stored as float32.
function multinomialOne(probs, rng) {
  let best = -1;
  let bestValue = -Infinity;
  for (let i = 0; i < probs.length; ++i) {
    const q = Math.fround(-Math.log(1 - rng.uniform()));
    const r = Math.fround(probs[i] / q);
    if (r > bestValue || (Number.isNaN(r) && !Number.isNaN(bestValue))) {
      best = i;
      bestValue = r;
    }
  }
  return best;
}

// ---------------------------------------------------------------- sampling (models/Sampling.cpp)

/// One row of logits -> float32 sampling probabilities, as sampling_probabilities().
function samplingProbabilities(logits, history, o, allowed, banned) {
  const f = Math.fround;
  const vocab = logits.length;
  const scores = Float32Array.from(logits);
  if (o.repetitionPenalty !== 1) {
    const penalty = f(o.repetitionPenalty);
    for (const id of new Set(history)) {
      if (id < 0 || id >= vocab) continue;
      scores[id] = scores[id] > 0 ? f(scores[id] / penalty) : f(scores[id] * penalty);
    }
  }
  for (const id of banned) if (id >= 0 && id < vocab) scores[id] = -Infinity;
  for (let id = 0; id < vocab; ++id) if (!allowed[id]) scores[id] = -Infinity;
  let max = -Infinity;
  for (const s of scores) max = Math.max(max, s);
  if (!(max > -Infinity)) throw new Error('no token is left to sample (every allowed id is banned)');
  const temperature = f(o.temperature);
  for (let i = 0; i < vocab; ++i) scores[i] = f(scores[i] / temperature);
  if (o.topK > 0 && o.topK < vocab) {
    const kth = Float32Array.from(scores).sort().reverse()[o.topK - 1];
    for (let i = 0; i < vocab; ++i) if (scores[i] < kth) scores[i] = -Infinity;
  }
  const top = f(max / temperature);
  const probs = new Float32Array(vocab);
  let sum = 0;
  for (let i = 0; i < vocab; ++i) {
    probs[i] = f(Math.exp(f(scores[i] - top)));
    sum += probs[i];
  }
  const inverse = f(1 / f(sum));
  for (let i = 0; i < vocab; ++i) probs[i] = f(probs[i] * inverse);
  if (o.topP < 1) {
    const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a] || a - b);
    const topP = f(o.topP);
    let cumulative = 0;  // LibTorch's CPU cumsum accumulates float in double
    const keep = new Uint8Array(vocab);
    for (const id of order) {
      cumulative += probs[id];
      keep[id] = f(f(cumulative) - probs[id]) < topP ? 1 : 0;
    }
    let kept = 0;
    for (let i = 0; i < vocab; ++i) {
      if (!keep[i]) probs[i] = 0;
      kept += probs[i];
    }
    const total = f(kept);
    for (let i = 0; i < vocab; ++i) probs[i] = f(probs[i] / total);
  }
  return probs;
}

// ---------------------------------------------------------------- the incremental graph

function loadOrt() {
  const dir = process.env.KMIDI_NODE_MODULES || path.join(__dirname, '..', 'node_modules');
  try {
    return require(path.join(dir, 'onnxruntime-node'));
  } catch (e) {
    die(4, `cannot load onnxruntime-node from ${dir}: ${e.message}`);
  }
  return null;
}

/// The next-token logits of one piece under guidance, as models::GuidedLogits:
/// G = 1 runs the conditioned row, G = 0 the neutral (zero) row, otherwise both
/// in one batch with their own cache rows.
class GuidedLogits {
  constructor(ort, session, shapes, emotion, guidance) {
    this.ort = ort;
    this.session = session;
    this.shapes = shapes;
    this.guidance = guidance;
    const cond = new Float32Array(shapes.emotionDim);
    emotion.forEach((v, i) => { cond[i] = v; });
    const neutral = new Float32Array(shapes.emotionDim);
    const rows = guidance === 1 ? [cond] : guidance === 0 ? [neutral] : [cond, neutral];
    this.rows = rows.length;
    const data = new Float32Array(this.rows * shapes.emotionDim);
    rows.forEach((r, i) => data.set(r, i * shapes.emotionDim));
    this.emotion = new ort.Tensor('float32', data, [this.rows, shapes.emotionDim]);
    this.past = {};
    for (const name of shapes.pastNames) {
      this.past[name] = new ort.Tensor('float32', new Float32Array(0), [this.rows, shapes.heads, 0, shapes.headDim]);
    }
  }

  async next(ids) {
    const t = ids.length;
    const input = new BigInt64Array(this.rows * t);
    for (let r = 0; r < this.rows; ++r) ids.forEach((id, k) => { input[r * t + k] = BigInt(id); });
    const feeds = { input_ids: new this.ort.Tensor('int64', input, [this.rows, t]), emotion: this.emotion, ...this.past };
    let out;
    try {
      out = await this.session.run(feeds);
    } catch (e) {
      die(3, `onnxruntime failed to run the incremental graph: ${e.message}`);
    }
    for (const name of this.shapes.pastNames) this.past[name] = out[name.replace(/^past_/, 'present_')];
    const logits = out.logits.data;  // [rows, t, vocab]
    const vocab = this.shapes.vocab;
    const row = (r) => logits.subarray((r * t + t - 1) * vocab, (r * t + t) * vocab);
    if (this.rows === 1) return Float32Array.from(row(0));
    const cond = row(0);
    const uncond = row(1);
    const g = Math.fround(this.guidance);
    const f = Math.fround;
    return Float32Array.from(cond, (c, i) => f(uncond[i] + f(g * f(c - uncond[i]))));
  }
}

/// models::generate: [BOS] + up to maxTokens sampled ids for one emotion vector.
async function generatePiece(ctx, emotion, o, seed) {
  const { tokenizer, grammar } = ctx;
  const cursor = new GrammarCursor(grammar);
  const prompt = [tokenizer.bos];
  for (const id of prompt) if (!cursor.advance(id)) die(2, `BOS (id ${id}) breaks the grammar in state '${cursor.stateName()}'`);
  const rng = new MT19937(seed);
  const logitsOf = new GuidedLogits(ctx.ort, ctx.session, ctx.shapes, emotion, o.guidance);
  const sequence = [...prompt];
  const allowed = new Uint8Array(ctx.shapes.vocab);
  let step = prompt;
  for (let i = 0; i < o.maxTokens; ++i) {
    if (cursor.complete()) break;
    const logits = await logitsOf.next(step);
    cursor.allowed(allowed);
    const probs = samplingProbabilities(logits, sequence, o, allowed, tokenizer.banned);
    const next = multinomialOne(probs, rng);
    sequence.push(next);
    cursor.advance(next);
    if (next === tokenizer.eos) break;
    step = [next];
  }
  return sequence;
}

// ---------------------------------------------------------------- main

/// "007": piece `index` of `count`, zero-padded to the digits of count - 1 (at least 3), as kmidi generate names them.
function pieceName(index, count) {
  const width = Math.max(3, String(count - 1).length);
  return String(index).padStart(width, '0');
}

function writeAtomic(file, text) {
  const temp = `${file}.tmp.${process.pid}`;
  fs.writeFileSync(temp, text);
  fs.renameSync(temp, file);
}

/// Tokenizer ids, grammar and graph shapes from the model file.
function describeModel(file, session) {
  let metadata;
  try {
    metadata = readMetadata(file);
  } catch (e) {
    die(2, `cannot read ${file}: ${e.message}`);
  }
  const need = (key) => {
    if (!(key in metadata)) die(2, `${file}: metadata has no '${key}' (not a kmidi generator export?)`);
    return metadata[key];
  };
  if (need('kmidi.format_version') !== '1') die(2, `${file}: kmidi.format_version ${metadata['kmidi.format_version']} is not 1`);
  if (need('kmidi.model_family') !== 'generator') die(2, `${file}: kmidi.model_family is '${metadata['kmidi.model_family']}', not 'generator'`);
  if (metadata['kmidi.profile'] !== 'incremental') {
    die(2, `${file}: kmidi.profile is '${metadata['kmidi.profile']}'; give the incremental graph (*_incremental.onnx)`);
  }
  const tokenizerJson = JSON.parse(need('kmidi.tokenizer'));
  const specials = {};
  for (const [key, value] of Object.entries(metadata)) {
    if (key.startsWith('kmidi.special_token.')) specials[key.slice('kmidi.special_token.'.length)] = Number(value);
  }
  for (const name of ['bos', 'eos']) if (!(name in specials)) die(2, `${file}: metadata has no kmidi.special_token.${name}`);
  const tokenizer = {
    bos: specials.bos,
    eos: specials.eos,
    banned: Object.entries(specials).filter(([name]) => name !== 'eos').map(([, id]) => id),  // kmidi's piece_sampling
  };
  if (!tokenizerJson.grammar) die(2, `${file}: kmidi.tokenizer has no grammar`);

  const dims = (name) => {
    const meta = (session.inputMetadata || []).find((m) => m.name === name);
    return meta && meta.shape;
  };
  const pastNames = session.inputNames.filter((n) => n.startsWith('past_'));
  const pastShape = dims(pastNames[0]);
  const emotionShape = dims('emotion');
  if (!pastShape || !emotionShape) die(2, `${file}: onnxruntime-node does not report the input shapes`);
  const logitsMeta = (session.outputMetadata || []).find((m) => m.name === 'logits');
  const vocabSize = logitsMeta && typeof logitsMeta.shape[2] === 'number' ? logitsMeta.shape[2] : null;
  const shapes = {
    pastNames,
    heads: pastShape[1],
    headDim: pastShape[3],
    emotionDim: emotionShape[1],
    vocab: vocabSize,
  };
  return { metadata, tokenizer, grammar: tokenizerJson.grammar, shapes };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const jobs = o.quadrants
    ? QUADRANTS.map(([name, v, a]) => ({ dir: path.join(o.out, name), emotion: [v, a], name }))
    : [{ dir: o.out, emotion: parseEmotion(o.emotion), name: null }];
  const ort = loadOrt();
  let session;
  try {
    session = await ort.InferenceSession.create(o.model, {
      executionProviders: ['cpu'], intraOpNumThreads: o.threads, interOpNumThreads: 1, executionMode: 'sequential',
    });
  } catch (e) {
    die(3, `onnxruntime cannot load ${o.model}: ${e.message}`);
  }
  const ctx = { ort, session, ...describeModel(o.model, session) };
  if (!ctx.shapes.vocab) {  // a symbolic vocab axis: ask the graph once
    const probe = new GuidedLogits(ort, session, { ...ctx.shapes, vocab: 0 }, [0, 0], 1);
    const out = await session.run({ input_ids: new ort.Tensor('int64', BigInt64Array.of(BigInt(ctx.tokenizer.bos)), [1, 1]),
      emotion: probe.emotion, ...probe.past });
    ctx.shapes.vocab = out.logits.dims[2];
  }
  const started = Date.now();
  const summary = {
    model: o.model,
    train_step: ctx.metadata['kmidi.train_step'] || null,
    sampling: {
      seed: o.seed, guidance: o.guidance, temperature: o.temperature, top_k: o.topK, top_p: o.topP,
      repetition_penalty: o.repetitionPenalty, max_tokens: o.maxTokens,
    },
    count: o.count,
    groups: [],
  };
  for (const job of jobs) {
    fs.mkdirSync(job.dir, { recursive: true });
    let tokens = 0;
    for (let i = 0; i < o.count; ++i) {
      const seed = o.seed + i;
      const ids = await generatePiece(ctx, job.emotion, o, seed);
      tokens += ids.length;
      const piece = {
        format: 'kmidi.tokens', version: 1, ids, seed, emotion: job.emotion, guidance: o.guidance,
        ended_with_eos: ids[ids.length - 1] === ctx.tokenizer.eos,
      };
      writeAtomic(path.join(job.dir, `${pieceName(i, o.count)}.tokens.json`), `${JSON.stringify(piece)}\n`);
    }
    summary.groups.push({ dir: job.dir, quadrant: job.name, emotion: job.emotion, pieces: o.count, tokens });
    process.stderr.write(`ort_generate: ${job.dir}: ${o.count} pieces, ${tokens} tokens\n`);
  }
  summary.seconds = (Date.now() - started) / 1000;
  writeAtomic(path.join(o.out, 'generation.json'), `${JSON.stringify(summary, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify({ out: o.out, groups: summary.groups.length, seconds: summary.seconds })}\n`);
}

main().catch((e) => die(3, e && e.stack ? e.stack : String(e)));
