// The API reference page (/api/v1/docs): the OpenAPI spec of this server as plain text, built with textContent only,
// so a description that looks like markup stays text. No framework and no CDN: the server may have no internet.
"use strict";

const el = (tag, text, cls) => {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
};

function resolve(spec, schema) {
  let found = schema || {};
  while (found.$ref) found = found.$ref.split("/").slice(1).reduce((at, part) => at[part], spec);
  return found;
}

function typeOf(spec, schema) {
  const found = resolve(spec, schema);
  if (found.anyOf) return found.anyOf.map((s) => typeOf(spec, s)).join(" | ");
  if (found.type === "array") return `${typeOf(spec, found.items)}[]`;
  return found.type || found.title || "object";
}

function fieldRows(spec, operation) {
  const rows = (operation.parameters || []).map((p) => [p.name, p.in, typeOf(spec, p.schema), p.required,
    p.description || (p.schema && p.schema.description) || ""]);
  for (const [kind, body] of Object.entries((operation.requestBody || {}).content || {})) {
    const schema = resolve(spec, body.schema);
    for (const [name, field] of Object.entries(schema.properties || {})) {
      rows.push([name, kind === "application/json" ? "json" : "form", typeOf(spec, field),
        (schema.required || []).includes(name), resolve(spec, field).description || field.description || ""]);
    }
  }
  return rows;
}

function operationBlock(spec, path, method, operation) {
  const block = el("section", undefined, "panel");
  block.append(el("h2", `${method.toUpperCase()} ${path}`), el("p", operation.summary || ""));
  const rows = fieldRows(spec, operation);
  if (rows.length) {
    const table = el("table");
    const head = el("tr");
    for (const title of ["field", "in", "type", "required", "description"]) head.append(el("th", title));
    table.append(head);
    for (const row of rows) {
      const line = el("tr");
      for (const cell of row) line.append(el("td", cell === true ? "yes" : cell === false ? "" : String(cell)));
      table.append(line);
    }
    block.append(table);
  }
  const answers = Object.entries(operation.responses || {}).map(([code, r]) => `${code} ${r.description || ""}`);
  block.append(el("p", `Answers: ${answers.join("; ")}`, "small"));
  return block;
}

async function main() {
  const routes = document.getElementById("routes");
  try {
    const response = await fetch("/api/v1/openapi.json");
    const spec = await response.json();
    document.getElementById("title").textContent = `${spec.info.title} ${spec.info.version}: API`;
    document.getElementById("description").textContent = spec.info.description || "";
    routes.replaceChildren();
    for (const [path, methods] of Object.entries(spec.paths)) {
      for (const [method, operation] of Object.entries(methods)) routes.append(operationBlock(spec, path, method,
        operation));
    }
  } catch (error) {
    routes.replaceChildren(el("p", `The spec could not be read: ${error}`, "error"));
  }
}

main();
