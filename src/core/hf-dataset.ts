/**
 * The Hugging Face `datasets` folder `steerbot export --format hf-dataset` writes.
 *
 * Owns: the row schema (one steer a row: its texts, the token ids steerbot's trainer trains on,
 * and the model they belong to), the shard names, and the dataset card (`README.md`) whose YAML
 * front matter declares the features and the config `datasets.load_dataset(DIR)` reads. The card
 * also says what TRL does by default that a steer must not get: an end-of-sequence marker after
 * chosen/rejected/completion (checked in TRL's source, v1.9.0: `DPOTrainer._prepare_dataset` and
 * `SFTTrainer._prepare_dataset` append `tokenizer.eos_token` to string rows; conversational rows
 * get the chat template's end of turn), and how the token-id columns avoid it. Pure.
 */
import type { ChatMessage } from "./steer-record.ts";

export interface HfRow {
  id: string;
  context: ChatMessage[];
  prefix: string;
  chosen: string;
  rejected: string;
  /** `pair`: a localized preference pair; `sft`: empty rejected span, a supervised example. */
  kind: "pair" | "sft";
  approximate: boolean;
  source: string;
  /** The model's chat template applied to the context, the assistant turn open and the prefix in it. */
  prompt: string;
  prompt_ids: number[];
  chosen_ids: number[];
  rejected_ids: number[];
  /** prompt_ids + chosen_ids, and which of them are the completion: SFTTrainer's tokenized form. */
  input_ids: number[];
  completion_mask: number[];
  model_fingerprint: string;
}

/** The features as the card declares them (`datasets` YAML), in column order. */
export const HF_FEATURES: { name: keyof HfRow; yaml: string }[] = [
  { name: "id", yaml: "dtype: string" },
  { name: "context", yaml: "list:\n    - name: role\n      dtype: string\n    - name: content\n      dtype: string" },
  { name: "prefix", yaml: "dtype: string" },
  { name: "chosen", yaml: "dtype: string" },
  { name: "rejected", yaml: "dtype: string" },
  { name: "kind", yaml: "dtype: string" },
  { name: "approximate", yaml: "dtype: bool" },
  { name: "source", yaml: "dtype: string" },
  { name: "prompt", yaml: "dtype: string" },
  { name: "prompt_ids", yaml: "sequence: int32" },
  { name: "chosen_ids", yaml: "sequence: int32" },
  { name: "rejected_ids", yaml: "sequence: int32" },
  { name: "input_ids", yaml: "sequence: int32" },
  { name: "completion_mask", yaml: "sequence: int8" },
  { name: "model_fingerprint", yaml: "dtype: string" },
];

/** Rows per JSONL shard. */
export const HF_SHARD_ROWS = 50_000;

export function shardName(index: number, count: number): string {
  const n = (i: number) => String(i).padStart(5, "0");
  return `data/train-${n(index)}-of-${n(count)}.jsonl`;
}

export function hfRow(parts: Omit<HfRow, "kind" | "input_ids" | "completion_mask">): HfRow {
  const row: HfRow = {
    ...parts,
    kind: parts.rejected === "" ? "sft" : "pair",
    input_ids: [...parts.prompt_ids, ...parts.chosen_ids],
    completion_mask: [...parts.prompt_ids.map(() => 0), ...parts.chosen_ids.map(() => 1)],
  };
  // column order as declared
  return Object.fromEntries(HF_FEATURES.map((f) => [f.name, row[f.name]])) as unknown as HfRow;
}

export interface CardInfo {
  rows: number;
  pairs: number;
  sft: number;
  approximate: number;
  shards: number;
  /** Bytes of all shards (the card's split size; `datasets` wants it with num_examples). */
  bytes: number;
  modelFile: string;
  modelFingerprint: string;
}

/** The dataset card: YAML front matter for `datasets`, then what a person needs to use the rows. */
export function datasetCard(info: CardInfo): string {
  const features = HF_FEATURES.map((f) => `  - name: ${f.name}\n    ${f.yaml}`).join("\n");
  return `---
pretty_name: steerbot steers
tags:
- dpo
- sft
- preference
- steerbot
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*.jsonl
dataset_info:
  config_name: default
  features:
${features}
  splits:
  - name: train
    num_bytes: ${info.bytes}
    num_examples: ${info.rows}
---

# steerbot steers

Corrections people made to a model's replies, exported by \`steerbot export --format hf-dataset\`.
Each row is one **steer**: the chat before the reply (\`context\`), the accepted part of the reply
(\`prefix\`), the span the model wrote there (\`rejected\`) and the person's correction (\`chosen\`).

- ${info.rows} rows in ${info.shards} shard(s): ${info.pairs} preference pairs (\`kind: pair\`),
  ${info.sft} supervised examples (\`kind: sft\`, empty \`rejected\`).
- ${info.approximate} rows are \`approximate\`: their prefix contains earlier edits, text the model
  never produced, so \`rejected\` is only a guess of what it would have written there. Filter them
  out with \`ds.filter(lambda r: not r["approximate"])\` if you want exact pairs only.
- Token ids (\`prompt_ids\`, \`chosen_ids\`, \`rejected_ids\`, \`input_ids\`) are the ones steerbot's
  own trainer trains on, from the model file \`${info.modelFile}\`
  (\`model_fingerprint\` = sha256 of that file: \`${info.modelFingerprint}\`). They are valid for that
  tokenizer only. They are cut where the prompt's and the span's token sequences part, so a
  prefix's last characters (a trailing space) may open \`chosen_ids\`. \`prompt\` is its chat template applied to \`context\`, with the assistant turn
  left open and \`prefix\` written into it.

## No end-of-sequence marker — anywhere

A steer corrects a span in the middle of a reply, not its end: \`chosen\` and \`rejected\` are
followed by nothing, and no column holds an EOS or end-of-turn token after them. A model taught an
EOS there learns to stop early.

**TRL adds one by default.** In TRL (checked in the source of v1.9.0) \`DPOTrainer\` and
\`SFTTrainer\` append \`tokenizer.eos_token\` to string \`chosen\`/\`rejected\`/\`completion\` columns while
preparing the dataset, and conversational (message-list) rows get the chat template's end of turn;
neither \`DPOConfig\` nor \`SFTConfig\` has a switch to turn that off (\`SFTConfig.eos_token\` only
chooses which token). Use the token-id columns instead, which TRL takes as they are:

\`\`\`python
from datasets import load_dataset
from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

ds = load_dataset("path/to/this/folder", split="train")

# SFT: a dataset with input_ids is treated as already tokenized (nothing appended);
# completion_mask limits the loss to the chosen span.
sft = ds.select_columns(["input_ids", "completion_mask"])
SFTTrainer(model=model, args=SFTConfig(output_dir="out", completion_only_loss=True), train_dataset=sft)

# DPO: its collator reads prompt_ids / chosen_ids / rejected_ids; skip the preparation that
# would re-tokenize the strings and append the EOS.
class NoEosDPOTrainer(DPOTrainer):
    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        return dataset

pairs = ds.filter(lambda r: r["kind"] == "pair").select_columns(["prompt_ids", "chosen_ids", "rejected_ids"])
NoEosDPOTrainer(model=model, args=DPOConfig(output_dir="out"), train_dataset=pairs, processing_class=tokenizer)
\`\`\`

TRL 0.x releases (checked 0.12 and 0.19) append \`tokenizer.eos_token_id\` in \`DPOTrainer.tokenize_row\`; the same
override of \`_prepare_dataset\` skips it there too (their collator names the columns
\`prompt_input_ids\`, \`chosen_input_ids\`, \`rejected_input_ids\`: rename them). If you train on the
string columns (\`prompt\` + \`chosen\`) with any other tool, check that it appends nothing either.
`;
}
