// Runs the Khronos glTF-Validator on GLB files and prints one JSON report per line.
// Usage: node tools/validate_gltf.mjs FILE...   (used by tests/khronos.py)
import fs from "node:fs";
import validator from "gltf-validator";

for (const file of process.argv.slice(2)) {
  const data = new Uint8Array(fs.readFileSync(file));
  try {
    const report = await validator.validateBytes(data, { maxIssues: 200, uri: file });
    process.stdout.write(JSON.stringify({ file, report }) + "\n");
  } catch (err) {
    process.stdout.write(JSON.stringify({ file, error: String(err) }) + "\n");
  }
}
