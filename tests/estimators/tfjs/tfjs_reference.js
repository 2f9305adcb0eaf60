// Run a TensorFlow.js graph model with @tensorflow/tfjs (pure JavaScript CPU backend) in Node: the reference
// runtime the parity tests compare estimators.tfjs against.
//
//   NODE_PATH=<dir>/node_modules node tfjs_reference.js request.json
//
// request.json: {"model": "path/model.json", "inputs": [{"name", "shape", "dtype", "file"}], "outputs": [names],
//                "out_dir": "dir"}; input files are raw little-endian float32 / int32. Writes out_dir/NAME_k.bin
// (raw float32 / int32 / uint8 for bool) for every requested output and out_dir/result.json, a list
// [{"name", "shape", "dtype", "file"}].
'use strict';
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');

async function main() {
  const request = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  await tf.setBackend('cpu');
  await tf.ready();
  const doc = JSON.parse(fs.readFileSync(request.model, 'utf8'));
  const specs = [];
  const buffers = [];
  for (const group of doc.weightsManifest) {
    for (const shard of group.paths) buffers.push(fs.readFileSync(path.join(path.dirname(request.model), shard)));
    specs.push(...group.weights);
  }
  const all = Buffer.concat(buffers);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  const handler = tf.io.fromMemory({
    modelTopology: doc.modelTopology, weightSpecs: specs, weightData, format: doc.format,
    generatedBy: doc.generatedBy, convertedBy: doc.convertedBy, signature: doc.signature,
  });
  const model = await tf.loadGraphModel(handler);
  const feeds = {};
  for (const inp of request.inputs) {
    const raw = fs.readFileSync(inp.file);
    const ab = raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength);
    const data = inp.dtype === 'int32' ? new Int32Array(ab) : new Float32Array(ab);
    feeds[inp.name] = tf.tensor(data, inp.shape, inp.dtype);
  }
  let outs = model.execute(feeds, request.outputs);
  if (!Array.isArray(outs)) outs = [outs];
  const result = [];
  for (let k = 0; k < outs.length; k++) {
    const t = outs[k];
    const values = await t.data();
    const file = path.join(request.out_dir, `out_${k}.bin`);
    fs.writeFileSync(file, Buffer.from(values.buffer, values.byteOffset, values.byteLength));
    result.push({ name: request.outputs[k], shape: t.shape, dtype: t.dtype, file });
  }
  fs.writeFileSync(path.join(request.out_dir, 'result.json'), JSON.stringify(result));
}

main().catch((err) => { process.stderr.write(String(err && err.stack ? err.stack : err) + '\n'); process.exit(1); });
