"""A reference sampler for the parse-rate question: no KV cache, float64 softmax, torch.multinomial at every step,
over every pool image K times; counts the score answers `parse_score` refuses.

    cd OUT_DIR_OF_run_stage1.sh && python reference_sampler.py SEED K
"""

import glob
import json
import sys

import torch
from PIL import Image

from evoquality.modeling import load_policy
from evoquality.prompts import parse_score, score_messages

torch.set_num_threads(1)
pol = load_policy("scoring", device="cpu", dtype="float32", attn_implementation="sdpa")
proc, tok, model = pol.processor, pol.processor.tokenizer, pol.model
stop = {tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")}
prompt = proc.apply_chat_template(score_messages(), add_generation_prompt=True, tokenize=False)
g = torch.Generator().manual_seed(int(sys.argv[1]))
K, T = int(sys.argv[2]), 16
fails = total = 0
for path in sorted(glob.glob("pool/*.png")):
    enc = proc(text=[prompt] * K, images=[Image.open(path).convert("RGB")] * K, return_tensors="pt")
    ids = enc["input_ids"]
    done = torch.zeros(K, dtype=torch.bool)
    gen = []
    for _ in range(T):
        e = dict(enc, input_ids=ids, attention_mask=torch.ones_like(ids))
        if "mm_token_type_ids" in enc:
            new = torch.zeros(K, ids.shape[1] - enc["input_ids"].shape[1], dtype=torch.long)
            e["mm_token_type_ids"] = torch.cat([enc["mm_token_type_ids"], new], 1)
        with torch.inference_mode():
            logits = model(**e).logits[:, -1].double()
        nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=g)[:, 0]
        gen.append(nxt)
        ids = torch.cat([ids, nxt[:, None]], 1)
        done |= torch.tensor([t.item() in stop for t in nxt])
        if done.all():
            break
    rows = torch.stack(gen, 1).tolist()
    for r in rows:
        cut = next((i for i, t in enumerate(r) if t in stop), len(r))
        text = tok.decode(r[:cut], skip_special_tokens=True)
        total += 1
        fails += parse_score(text) is None
print(json.dumps({"seed": int(sys.argv[1]), "fails": fails, "total": total}))
