// The package's TypeScript (generated from the Rust models by tsify) against the contract
// (openapi-typescript's output of openapi/datapilot.v1.yaml): every mapped schema must have the
// same property names, the same required-ness and the same string literal sets. A drift on
// either side fails here. The few deliberate differences are listed below with their reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const repo = process.env.DATAPILOT_REPO;
const require = createRequire(join(repo, 'package.json'));
const ts = require('typescript');

/** Contract schema → SDK type (the Rust model's name). */
const MAP = {
  Health: 'Health', WhoAmI: 'WhoAmI', VerifierKey: 'VerifierKey', VerifierKeySet: 'VerifierKeys',
  DatasetCreate: 'CreateDatasetRequest', Dataset: 'Dataset', ManifestFile: 'FileEntry',
  DatasetVersionRegister: 'RegisterDatasetVersionRequest', DatasetVersion: 'DatasetVersion',
  Manifest: 'DatasetManifest', DatasetVersionRef: 'DatasetVersionRef',
  GateResultRecord: 'RecordGateResultRequest', GateResult: 'GateResult', Policy: 'Policy',
  PolicyUpdate: 'UpdatePolicyRequest', RunCreate: 'CreateRunRequest', Run: 'Run', RunCreated: 'CreatedRun',
  RunFinish: 'FinishRunRequest', MetricPointInput: 'MetricPoint', MetricAppend: 'AppendMetricsRequest',
  MetricBatch: 'MetricBatch', MetricPoint: 'MetricValue', Artifact: 'Artifact', LineageNode: 'LineageNode',
  LineageEdge: 'LineageEdge', Lineage: 'Lineage', Actor: 'Actor', AuditEvent: 'AuditEvent',
  LedgerEntry: 'LedgerEntry', InclusionProof: 'InclusionProof', ConsistencyProof: 'ConsistencyProof',
  TokenCreate: 'CreateTokenRequest', ApiToken: 'ApiToken', TokenCreated: 'CreatedToken',
  DatasetPage: 'Page', RunPage: 'Page', AuditEventPage: 'Page',
};

/** SDK optional where the contract requires (nullable): the core decodes these leniently
 * (`#[serde(default)]`), which tsify types as optional. Reading them as `x ?? null` is safe. */
const LENIENT = new Set([
  'Dataset.description', 'DatasetVersion.note', 'GateResult.details', 'Run.params', 'Run.outputs',
  'Run.finished_at', 'WhoAmI.token_id', 'WhoAmI.run_id', 'ApiToken.expires_at', 'ApiToken.revoked_at',
  'DatasetPage.next_cursor', 'RunPage.next_cursor', 'AuditEventPage.next_cursor',
]);

/** The SDK has one `Role` for every use; the contract narrows it per use. SDK ⊇ contract. */
const ROLE_USES = new Set(['WhoAmI.role', 'Actor.role', 'TokenCreate.role', 'ApiToken.role']);

async function contractSource() {
  const mod = await import(pathToFileURL(join(repo, 'node_modules', 'openapi-typescript', 'dist', 'index.mjs')));
  const ast = await mod.default(pathToFileURL(join(repo, 'openapi', 'datapilot.v1.yaml')));
  return mod.astToString(ast);
}

function parse(text, name) {
  return ts.createSourceFile(name, text, ts.ScriptTarget.ES2022, true);
}

/** name → TypeNode of `components.schemas` in openapi-typescript output. */
function contractSchemas(sf) {
  const out = new Map();
  sf.forEachChild((n) => {
    if (ts.isInterfaceDeclaration(n) && n.name.text === 'components') {
      const schemas = n.members.find((m) => m.name?.text === 'schemas');
      for (const m of schemas.type.members) out.set(m.name.text, m.type);
    }
  });
  return out;
}

/** name → declaration (interface or type alias) in the SDK's d.ts. */
function sdkDecls(sf) {
  const out = new Map();
  sf.forEachChild((n) => {
    if (ts.isInterfaceDeclaration(n) || ts.isTypeAliasDeclaration(n)) out.set(n.name.text, n);
  });
  return out;
}

function members(node) {
  const list = ts.isInterfaceDeclaration(node) ? node.members : ts.isTypeLiteralNode(node) ? node.members : null;
  if (!list) return null;
  return new Map(list.filter(ts.isPropertySignature).map((m) => [m.name.text, m]));
}

/** The string literals a type allows, following references; null if it is not a literal union. */
function literals(type, resolve) {
  if (!type) return null;
  if (ts.isLiteralTypeNode(type) && ts.isStringLiteral(type.literal)) return [type.literal.text];
  if (ts.isUnionTypeNode(type)) {
    const parts = type.types.filter((t) => !(ts.isLiteralTypeNode(t) && t.literal.kind === ts.SyntaxKind.NullKeyword));
    const all = parts.map((t) => literals(t, resolve));
    return all.every(Boolean) ? all.flat().sort() : null;
  }
  const target = resolve(type);
  return target && target !== type ? literals(target, resolve) : null;
}

test('the SDK typings match the contract (names, required-ness, literal sets)', async () => {
  const contract = contractSchemas(parse(await contractSource(), 'contract.d.ts'));
  const dts = readFileSync(join('node_modules', '@animus', 'datapilot', 'dist', 'node.d.mts'), 'utf8');
  const sdk = sdkDecls(parse(dts, 'node.d.mts'));
  const resolveContract = (t) => {
    // components["schemas"]["X"]
    if (ts.isIndexedAccessTypeNode(t) && ts.isLiteralTypeNode(t.indexType)) return contract.get(t.indexType.literal.text);
    return null;
  };
  const resolveSdk = (t) => {
    if (ts.isTypeReferenceNode(t)) {
      const d = sdk.get(t.typeName.getText());
      return d && ts.isTypeAliasDeclaration(d) ? d.type : null;
    }
    return null;
  };
  const problems = [];
  let checked = 0;
  for (const [schema, sdkName] of Object.entries(MAP)) {
    const c = members(contract.get(schema) ?? ts.factory.createTypeLiteralNode([]));
    const decl = sdk.get(sdkName);
    if (!c || c.size === 0) problems.push(`contract has no object schema ${schema}`);
    if (!decl) problems.push(`SDK has no type ${sdkName} (for ${schema})`);
    if (!c || !decl) continue;
    const s = members(decl);
    for (const name of new Set([...c.keys(), ...s.keys()])) {
      const where = `${schema}.${name}`;
      const cm = c.get(name);
      const sm = s.get(name);
      if (!cm) { problems.push(`${where}: only in the SDK (${sdkName})`); continue; }
      if (!sm) { problems.push(`${where}: missing from the SDK (${sdkName})`); continue; }
      checked++;
      const cOpt = !!cm.questionToken;
      const sOpt = !!sm.questionToken;
      if (cOpt !== sOpt && !(sOpt && !cOpt && LENIENT.has(where))) {
        problems.push(`${where}: ${cOpt ? 'optional' : 'required'} in the contract, ${sOpt ? 'optional' : 'required'} in the SDK`);
      }
      const cl = literals(cm.type, resolveContract);
      const sl = literals(sm.type, resolveSdk);
      if (cl && sdkName !== 'Page') {
        if (!sl) problems.push(`${where}: contract allows ${cl.join('|')}, SDK type is not a literal union`);
        else if (ROLE_USES.has(where) ? !cl.every((v) => sl.includes(v)) : cl.join() !== sl.join()) {
          problems.push(`${where}: contract ${cl.join('|')} vs SDK ${sl.join('|')}`);
        }
      }
    }
  }
  // Top-level vocabularies.
  for (const name of ['GateStatus', 'RunStatus']) {
    const cl = literals(contract.get(name), resolveContract);
    const sl = literals(sdk.get(name)?.type, resolveSdk);
    if (cl?.join() !== sl?.join()) problems.push(`${name}: contract ${cl} vs SDK ${sl}`);
  }
  assert.deepEqual(problems, [], `typings drifted from the contract:\n  ${problems.join('\n  ')}`);
  assert.ok(checked >= 140, `only ${checked} properties compared`);
});
