"""Does vLLM-CPU compute the same model as transformers? Teacher-forced log-probabilities of fixed answers.

    python compare_logprobs.py MODEL_DIR IMAGE [IMAGE ...]

For each image: the score prompt followed by a fixed answer; transformers (float32, our runtime processor) and
vLLM (float32, the stock processor from the checkpoint's files) each give the log-probability of every prompt
token after the first. Prints one JSON line per image: whether both tokenised the same ids, and the largest
absolute difference over all positions and over the answer's positions.
"""

import json
import sys


def main(model: str, images: list[str]) -> None:
    import torch
    import vllm
    from PIL import Image

    from evoquality.modeling import load_policy
    from evoquality.prompts import score_messages

    policy = load_policy(model, device="cpu", dtype="float32", attn_implementation="sdpa")
    proc = policy.processor
    prompt = proc.apply_chat_template(score_messages(), add_generation_prompt=True, tokenize=False)
    text = prompt + "\\boxed{3.14}<|im_end|>"
    llm = vllm.LLM(model=model, dtype="float32", seed=0, limit_mm_per_prompt={"image": 2},
                   enable_chunked_prefill=False, kv_cache_memory_bytes=1 << 30)
    params = vllm.SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=1.0)
    for path in images:
        image = Image.open(path).convert("RGB")
        enc = proc(text=[text], images=[image], return_tensors="pt")
        with torch.inference_mode():
            logits = policy.model(**enc).logits[0].float()
        ids = enc["input_ids"][0]
        ref = torch.log_softmax(logits[:-1], -1).gather(1, ids[1:, None])[:, 0]
        out = llm.generate([{"prompt": text, "multi_modal_data": {"image": [image]}}], params, use_tqdm=False)[0]
        same_ids = out.prompt_token_ids == ids.tolist()
        got = torch.tensor([lp[t].logprob for lp, t in zip(out.prompt_logprobs[1:], out.prompt_token_ids[1:])])
        n_answer = len(proc.tokenizer("\\boxed{3.14}<|im_end|>")["input_ids"])
        diff = (got - ref).abs() if same_ids else None
        print(json.dumps({"image": path, "same_token_ids": same_ids, "n_tokens": len(ids),
                          "max_abs_diff_all": None if diff is None else float(diff.max()),
                          "max_abs_diff_answer": None if diff is None else float(diff[-n_answer:].max()),
                          "answer_logprob_transformers": [round(float(x), 4) for x in ref[-n_answer:]],
                          "answer_logprob_vllm": [round(float(x), 4) for x in got[-n_answer:]]}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
