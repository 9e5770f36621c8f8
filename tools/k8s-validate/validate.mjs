// Validates Kubernetes manifests against the Kubernetes API's JSON schemas (kubernetes-models, ajv) and checks
// what Retina's deployment needs: probes on /health (liveness) and /ready (readiness), a GPU request where the image
// is the CUDA one, and a termination grace period that covers the server's drain.
//   cd tools/k8s-validate && npm ci && node validate.mjs ../../docker/kubernetes.yaml
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

let failures = 0;
let count = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    const obj = doc.toJS();
    if (!obj) continue;
    count++;
    const where = `${file}: ${obj.kind}/${obj.metadata?.name}`;
    try {
      const group = obj.apiVersion.includes("/") ? obj.apiVersion : `v1`;
      const mod = await import(`kubernetes-models/${group}`);
      const Kind = mod[obj.kind];
      if (!Kind) throw new Error(`no schema for ${obj.apiVersion} ${obj.kind}`);
      new Kind(obj).validate();
      if (obj.kind === "Deployment") {
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
console.log(`${count} manifests, ${failures} invalid`);
process.exit(failures || count === 0 ? 1 : 0);
