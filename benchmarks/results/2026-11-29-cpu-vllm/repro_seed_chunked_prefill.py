"""vLLM-CPU: per-request seeds with and without chunked prefill, on a tiny Qwen2.5-VL (head_dim 32).

    python repro_seed_chunked_prefill.py MODEL_DIR IMAGE [IMAGE ...]

Case A (chunked prefill on, a token budget smaller than one prompt, so every prompt is split): vLLM discards the
token sampled for an unfinished chunk and rewinds the request's generator with `Generator.set_offset`, which the
CPU generator does not have. Case B (chunked prefill off, EvoQuality's CPU default): runs, and each request's
answers are the same alone or in a batch (per-request seeds). Prints one JSON line per case.
"""

import json
import sys
import time

from PIL import Image


def main(model: str, images: list[str]) -> None:
    import vllm

    from evoquality.labelling.backends import GenRequest
    from evoquality.labelling.vllm_backend import build_sampling_params, build_vllm_inputs
    from evoquality.processing import load_processor
    from evoquality.prompts import compare_messages

    proc = load_processor(model)
    pics = [Image.open(p).convert("RGB") for p in images]
    reqs = [GenRequest(compare_messages(), (pics[k], pics[(k + 1) % len(pics)]), 4, seed=100 + k)
            for k in range(len(pics))]
    render = lambda m: proc.apply_chat_template(m, add_generation_prompt=True, tokenize=False)  # noqa: E731
    inputs = build_vllm_inputs(reqs, render)
    params = build_sampling_params(reqs, vllm.SamplingParams, max_new_tokens=16, temperature=1.0)
    for case, extra in (("A_chunked_prefill_on", dict(enable_chunked_prefill=True, max_num_batched_tokens=64,
                                                     max_num_seqs=8)),
                        ("B_chunked_prefill_off", dict(enable_chunked_prefill=False))):
        t0 = time.monotonic()
        row = {"case": case, "engine_args": extra}
        try:
            llm = vllm.LLM(model=model, seed=0, limit_mm_per_prompt={"image": 2}, kv_cache_memory_bytes=1 << 30,
                           **extra)
            row["engine_start_s"] = round(time.monotonic() - t0, 1)
            batch = [[c.text for c in o.outputs] for o in llm.generate(inputs, sampling_params=params, use_tqdm=False)]
            alone = [[c.text for c in o.outputs] for o in llm.generate(inputs[-1:], sampling_params=params[-1:],
                                                                      use_tqdm=False)]
            row.update(ok=True, last_request_same_alone_and_in_batch=alone[0] == batch[-1], sample=batch[-1][:2])
            del llm
        except Exception as err:  # the point of case A: record the error vLLM raises
            row.update(ok=False, error=f"{type(err).__name__}: {err}"[:500])
        row["wall_s"] = round(time.monotonic() - t0, 1)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
