// Validates Kubernetes manifests against the Kubernetes API's JSON schemas (kubernetes-models, ajv), Gateway API
// objects against the Gateway API's (@kubernetes-models/gateway-api), and InferencePool against
// inferencepool-v1.schema.json (written from the inference extension's v1 API reference). Then checks what Retina's
// deployment needs: probes on /health (liveness) and /ready (readiness), a GPU request where the image is the CUDA
// one, a termination grace period that covers the server's drain, and, across all files given, that every
// InferencePool selects a Deployment's pods on one of their container ports, names an existing EPP Service port,
// and is the backend of an HTTPRoute.
//   cd tools/k8s-validate && npm ci && node validate.mjs ../../docker/kubernetes.yaml ../../docker/inference-gateway.yaml
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import Ajv from "ajv";

const ajv = new Ajv({ allErrors: true, strict: false });
const inferencePool = ajv.compile(JSON.parse(readFileSync(new URL("./inferencepool-v1.schema.json", import.meta.url))));
const all = [];

let failures = 0;
let count = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    const obj = doc.toJS();
    if (!obj) continue;
    count++;
    const where = `${file}: ${obj.kind}/${obj.metadata?.name}`;
    try {
      all.push(obj);
      const group = obj.apiVersion.includes("/") ? obj.apiVersion : `v1`;
      if (obj.apiVersion === "inference.networking.k8s.io/v1") {
        if (!inferencePool(obj)) throw new Error(ajv.errorsText(inferencePool.errors));
      } else {
        const pkg = group.startsWith("gateway.networking.k8s.io/") ? `@kubernetes-models/gateway-api/${group}`
            : `kubernetes-models/${group}`;
        const mod = await import(pkg);
        const Kind = mod[obj.kind];
        if (!Kind) throw new Error(`no schema for ${obj.apiVersion} ${obj.kind}`);
        new Kind(obj).validate();
      }
      if (obj.kind === "Deployment" && !obj.metadata.name.endsWith("-epp")) {
        const pod = obj.spec.template.spec;
        for (const c of pod.containers) {
          if (c.livenessProbe?.httpGet?.path !== "/health") throw new Error(`${c.name}: liveness must probe /health`);
          if (c.readinessProbe?.httpGet?.path !== "/ready") throw new Error(`${c.name}: readiness must probe /ready`);
          if (c.image.includes("cuda") && !c.resources?.limits?.["nvidia.com/gpu"])
            throw new Error(`${c.name}: a CUDA image must request nvidia.com/gpu`);
        }
        if (!(pod.terminationGracePeriodSeconds > 30))
          throw new Error("terminationGracePeriodSeconds must exceed the drain timeout (30 s)");
      }
      console.log(`ok  ${where}`);
    } catch (e) {
      failures++;
      console.log(`BAD ${where}: ${e.message}`);
    }
  }
}
// Cross-object checks.
const byKind = (k) => all.filter((o) => o.kind === k);
for (const pool of byKind("InferencePool")) {
  const where = `InferencePool/${pool.metadata.name}`;
  const problems = [];
  const labels = pool.spec.selector.matchLabels;
  const pods = byKind("Deployment").filter((d) =>
    Object.entries(labels).every(([k, v]) => d.spec.template.metadata?.labels?.[k] === v));
  if (pods.length === 0) problems.push(`selects no Deployment's pods (${JSON.stringify(labels)})`);
  for (const p of pool.spec.targetPorts) {
    if (!pods.some((d) => d.spec.template.spec.containers.some((c) => (c.ports || []).some((cp) => cp.containerPort === p.number))))
      problems.push(`target port ${p.number} is no container port of the selected pods`);
  }
  const ref = pool.spec.endpointPickerRef;
  if (ref) {
    const svc = byKind("Service").find((s) => s.metadata.name === ref.name);
    if (!svc) problems.push(`endpoint picker Service ${ref.name} is missing`);
    else if (!svc.spec.ports.some((p) => p.port === ref.port?.number)) problems.push(`Service ${ref.name} has no port ${ref.port?.number}`);
    else {
      const epp = byKind("Deployment").find((d) => Object.entries(svc.spec.selector).every(([k, v]) => d.spec.template.metadata?.labels?.[k] === v));
      const args = epp?.spec.template.spec.containers.flatMap((c) => c.args || []) || [];
      if (!args.includes(`--pool-name=${pool.metadata.name}`)) problems.push(`the EPP behind ${ref.name} is not started for pool ${pool.metadata.name}`);
    }
  }
  const routed = byKind("HTTPRoute").some((r) => r.spec.rules.some((rule) => (rule.backendRefs || []).some((b) =>
    b.kind === "InferencePool" && b.group === "inference.networking.k8s.io" && b.name === pool.metadata.name)));
  if (!routed) problems.push("no HTTPRoute sends traffic to it");
  if (problems.length) {
    failures++;
    console.log(`BAD ${where}: ${problems.join("; ")}`);
  } else {
    console.log(`ok  ${where}: selects ${pods.map((d) => d.metadata.name).join(", ")}, picker ${ref?.name}, routed`);
  }
}
console.log(`${count} manifests, ${failures} invalid`);
process.exit(failures || count === 0 ? 1 : 0);
