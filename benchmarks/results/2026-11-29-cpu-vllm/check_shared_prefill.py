"""Is transformers' cached, shared-prefill generation (evoquality.sampling) the model's distribution?

    cd OUT_DIR_OF_run_stage1.sh && python check_shared_prefill.py N      (N = samples per prompt, as in labelling)


Replicates sampling._generate_shared_prefill on two score prompts, keeps the logits generate sampled from, and
compares their log-softmax with a full forward (no cache) of the sampled sequences; prints the largest absolute
difference per step."""

import sys

import torch
from PIL import Image

from evoquality.modeling import load_policy
from evoquality.prompts import score_messages
from evoquality.sampling import build_inputs

torch.set_num_threads(1)
policy = load_policy("scoring", device="cpu", dtype="float32", attn_implementation="sdpa")
model = policy.model
imgs = [Image.open(f"pool/{n}.png").convert("RGB") for n in ("astronaut", "chelsea")]
inputs = build_inputs(policy, [(score_messages(), [imgs[0]]), (score_messages(), [imgs[1]])])
n = int(sys.argv[1])
ids, mask = inputs["input_ids"], inputs["attention_mask"]
per_token = [k for k in ("mm_token_type_ids",) if k in inputs]
prefill = dict(inputs, input_ids=ids[:, :-1], attention_mask=mask[:, :-1])
prefill.update({k: inputs[k][:, :-1] for k in per_token})
torch.manual_seed(0)
with torch.inference_mode():
    cache = model(**prefill, use_cache=True, logits_to_keep=1).cache
    if n > 1:
        cache.batch_repeat_interleave(n)
        model.model.rope_deltas = model.model.rope_deltas.repeat_interleave(n, 0)
    rest = {k: inputs[k].repeat_interleave(n, 0) for k in ("input_ids", "attention_mask", *per_token)}
    out = model.generate(**rest, cache=cache, max_new_tokens=10, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                         output_logits=True, return_dict_in_generate=True)
    seqs = out.sequences
    gen_lp = torch.stack([torch.log_softmax(l.float(), -1) for l in out.logits], 1)  # (B*n, T, V)
    # Full forward of each (prompt + sampled tokens) row, no cache.
    full_mask = torch.cat([rest["attention_mask"], torch.ones_like(seqs[:, ids.shape[1]:])], 1)
    # Each prompt's pixel values, repeated n times (rows i*n .. i*n+n-1 answer prompt i).
    B = ids.shape[0]
    grid = inputs["image_grid_thw"]
    sizes = grid.prod(-1).tolist()
    chunks = torch.split(inputs["pixel_values"], sizes)
    pv_rep = torch.cat([chunks[i] for i in range(B) for _ in range(n)])
    grid_rep = grid.repeat_interleave(n, 0)
    extra = {}
    if per_token:
        new = torch.zeros_like(seqs[:, ids.shape[1]:])
        extra["mm_token_type_ids"] = torch.cat([rest["mm_token_type_ids"], new], 1)
    logits = model(input_ids=seqs, attention_mask=full_mask, pixel_values=pv_rep, image_grid_thw=grid_rep,
                   **extra).logits
    full_lp = torch.log_softmax(logits[:, ids.shape[1]-1:-1].float(), -1)
    T = gen_lp.shape[1]
    d = (gen_lp[:, :T] - full_lp[:, :T]).abs()
    print("n", n, "max abs diff of next-token logprobs, generate vs full forward, per step:",
          [round(x, 4) for x in d.amax((0, 2)).tolist()])
