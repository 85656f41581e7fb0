// Validates CycloneDX JSON files against the official CycloneDX 1.6 JSON
// schema shipped by @cyclonedx/cyclonedx-library (pinned in package.json),
// with its own validator (ajv, offline: the schemas are local files).
// usage: node validate.mjs FILE.cdx.json...   exit 0 valid, 1 invalid, 2 usage
import { readFileSync } from 'node:fs';
import * as CDX from '@cyclonedx/cyclonedx-library';

const files = process.argv.slice(2);
if (files.length === 0) {
	console.error('usage: node validate.mjs FILE.cdx.json...');
	process.exit(2);
}
const v = new CDX.Validation.JsonStrictValidator(CDX.Spec.Version.v1dot6);
let bad = 0;
for (const f of files) {
	const text = readFileSync(f, 'utf8');
	const errors = await v.validate(text);
	if (errors === null) {
		console.log(`${f}: valid CycloneDX 1.6`);
	} else {
		console.log(`${f}: INVALID: ${JSON.stringify(errors)}`);
		bad++;
	}
}
process.exit(bad ? 1 : 0);
