// Validates an AsyncAPI document with the official parser (Avro payloads included) and prints
// its channels as JSON for the cross-check against the service's topic table.
// Usage: node validate.mjs docs/asyncapi.yaml
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { Parser, fromFile } from "@asyncapi/parser";
import { AvroSchemaParser } from "@asyncapi/avro-schema-parser";

const path = resolve(process.argv[2]);
const parser = new Parser();
parser.registerSchemaParser(AvroSchemaParser());
const { document, diagnostics } = await fromFile(parser, path).parse({
  source: pathToFileURL(path).href,
});
const errors = diagnostics.filter((d) => d.severity === 0);
for (const d of diagnostics) {
  const where = d.path && d.path.length ? d.path.join(".") : "(document)";
  console.error(`${["error", "warning", "info", "hint"][d.severity]} ${where}: ${d.message}`);
}
if (!document || errors.length) {
  console.error(`${errors.length} error(s) in ${path}`);
  process.exit(1);
}
const channels = {};
for (const channel of document.channels()) {
  const kafka = channel.bindings().get("kafka")?.value() ?? {};
  channels[channel.address()] = {
    partitions: kafka.partitions,
    cleanup: kafka.topicConfiguration?.["cleanup.policy"],
    messages: channel.messages().all().map((m) => m.name()),
  };
}
console.log(JSON.stringify(channels));
void readFileSync;
