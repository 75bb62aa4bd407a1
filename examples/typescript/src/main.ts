// A typed stageflow client: types generated from the OpenAPI document with
// openapi-typescript, requests made with openapi-fetch. No casts: what compiles is what
// the server accepts and answers.
//
//   npm ci && npm run generate && npm run build
//   STAGEFLOW_URL=http://127.0.0.1:8080 STAGEFLOW_EMAIL=… STAGEFLOW_PASSWORD=… npm start

import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type Problem = components["schemas"]["Problem"];
// Reports answer JSON or, to `Accept: text/csv`, CSV: reading JSON by default types each
// answer as its JSON schema (a CSV request says `parseAs: "text"`).
type Json = `${string}/json` | `${string}/${string}+json`;

const baseUrl = process.env.STAGEFLOW_URL ?? "http://127.0.0.1:8080";
const email = process.env.STAGEFLOW_EMAIL ?? "admin@localhost";
const password = process.env.STAGEFLOW_PASSWORD ?? "";

function fail(step: string, problem?: Problem): never {
  const why = problem ? `${problem.status} ${problem.code}: ${problem.detail}` : "no answer";
  console.error(`✗ ${step}: ${why}`);
  process.exit(1);
}

function ok(step: string, detail = ""): void {
  console.log(`✓ ${step}${detail ? ` — ${detail}` : ""}`);
}

async function main(): Promise<void> {
  const anonymous = createClient<paths, Json>({ baseUrl });
  const signIn = await anonymous.POST("/api/v1/auth/token", { body: { email, password } });
  if (!signIn.data) fail("sign in", signIn.error);
  ok("signed in", `token expires in ${signIn.data.expires_in} s`);

  const api = createClient<paths, Json>({
    baseUrl,
    headers: { Authorization: `Bearer ${signIn.data.access_token}` },
  });

  const created = await api.POST("/api/v1/pipelines/from-template", {
    body: { template: "standard", name: "华东区销售" },
  });
  if (!created.data) fail("create a pipeline", created.error);
  const pipeline = created.data;
  const design = pipeline.stages.find((stage) => stage.name === "方案设计");
  if (!design) fail("find the 方案设计 stage");
  ok("pipeline from the standard template", pipeline.stages.map((s) => s.name).join(" → "));

  const lead = await api.POST("/api/v1/leads", {
    body: {
      first_name: "磊",
      last_name: "李",
      email: `li.lei+${Date.now()}@yunqi.example`,
      company: "杭州云启科技",
      industry: "software",
      company_size: "51-200",
      region: "华东",
      source: "web_form",
      interest: "CRM 升级",
      bant: {
        budget: "approved",
        authority: "decision_maker",
        need: "high",
        timeline: "within_3_months",
      },
    },
  });
  if (!lead.data) fail("create a lead", lead.error);
  ok("lead", `score ${lead.data.score}`);

  const converted = await api.POST("/api/v1/leads/{id}/convert", {
    params: { path: { id: lead.data.id } },
    body: { pipeline_id: pipeline.id },
  });
  if (!converted.data) fail("convert the lead", converted.error);
  const deal = converted.data.opportunity;
  ok("converted", `deal ${deal.name} in stage ${deal.stage_id}`);

  // The stage needs an amount: the move is refused, and the problem says why.
  const refused = await api.POST("/api/v1/opportunities/{id}/move", {
    params: { path: { id: deal.id } },
    body: { stage_id: design.id },
  });
  if (refused.error?.code !== "stage_requirements_unmet") {
    fail("expected stage_requirements_unmet", refused.error);
  }
  const missing = (refused.error.errors ?? []).map((e) => e.field).join(", ");
  ok("move refused by the stage gate", `missing ${missing}`);

  const patched = await api.PATCH("/api/v1/opportunities/{id}", {
    params: { path: { id: deal.id } },
    body: { amount: "120000.00", expected_close_date: "2026-12-31" },
  });
  if (!patched.data) fail("set the amount", patched.error);
  ok("amount set", `${patched.data.amount} ${patched.data.currency}`);

  const moved = await api.POST("/api/v1/opportunities/{id}/move", {
    params: { path: { id: deal.id } },
    body: { stage_id: design.id, note: "方案已发送" },
  });
  if (!moved.data) fail("move", moved.error);
  ok("moved", `probability ${moved.data.effective_probability}`);

  const won = await api.POST("/api/v1/opportunities/{id}/win", {
    params: { path: { id: deal.id } },
  });
  if (!won.data) fail("win", won.error);
  ok("won", `status ${won.data.status}`);

  const funnel = await api.GET("/api/v1/reports/funnel", {
    params: { query: { pipeline_id: pipeline.id } },
  });
  if (!funnel.data) fail("funnel", funnel.error);
  const reached = funnel.data.stages.map((s) => `${s.name} ${s.reached_or_passed}`).join(", ");
  ok("funnel", `win rate ${funnel.data.win_rate.value ?? "n/a"}; ${reached}`);

  const csv = await api.GET("/api/v1/reports/forecast", {
    params: { query: { period: "quarter" } },
    headers: { Accept: "text/csv" },
    parseAs: "text",
  });
  if (csv.data === undefined) fail("forecast CSV", csv.error);
  ok("forecast CSV", csv.data.split("\n")[0] ?? "");
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
