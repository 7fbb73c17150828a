"""ReCon's two-stream encoder, by the properties that fail when it is built wrong: the global queries' losses give
exactly zero gradient on the local stream's parameters and the local loss exactly zero on the global stream's
(only the final LayerNorm is shared); the local outputs do not depend on the global tokens' values; without the
stop-gradient (fine-tuning) the global losses do reach the local stream; one block against its written form."""
import pytest
import torch

from pc_kd.models.backbones import ReConBlock, ReConEncoder


def _inputs(seed=0, b=2, q=3, n=9, c=16):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, k, c, generator=g) for k in (q, n, q, n)]  # globals, locals, their positions


def _grads(encoder, loss_of):
    encoder.zero_grad()
    loss_of(*encoder(*_inputs())).backward()
    return {name: (p.grad if p.grad is not None else torch.zeros_like(p)) for name, p in encoder.named_parameters()}


def _is_global(name: str) -> bool:
    return name.split(".")[-2].endswith("_global") or "_global." in name


def test_each_loss_reaches_only_its_own_stream():
    torch.manual_seed(0)
    encoder = ReConEncoder(dim=16, depth=3, num_heads=4)
    from_globals = _grads(encoder, lambda g, v: (g ** 2).sum())  # image / text regression read the globals
    from_locals = _grads(encoder, lambda g, v: (v ** 2).sum())  # reconstruction reads the locals
    local_names = [n for n in from_globals if n.startswith("blocks.") and not _is_global(n)]
    global_names = [n for n in from_globals if n.startswith("blocks.") and _is_global(n)]
    assert local_names and global_names
    for name in local_names:
        assert from_globals[name].abs().max() == 0, name
        assert from_locals[name].abs().max() > 0, name
    for name in global_names:
        assert from_locals[name].abs().max() == 0, name
        assert from_globals[name].abs().max() > 0, name
    shared = [n for n in from_globals if not n.startswith("blocks.")]
    assert shared == ["norm.weight", "norm.bias"]
    assert all(from_globals[n].abs().max() > 0 and from_locals[n].abs().max() > 0 for n in shared)


def test_locals_do_not_depend_on_the_global_tokens_and_the_stop_gradient_is_what_cuts_the_path():
    torch.manual_seed(0)
    encoder = ReConEncoder(dim=16, depth=2, num_heads=4)
    globals_, locals_, gpos, lpos = _inputs()
    _, out = encoder(globals_, locals_, gpos, lpos)
    _, other = encoder(torch.randn_like(globals_) * 5, locals_, gpos, lpos)
    assert torch.equal(out, other)
    g_out, _ = encoder(globals_, locals_, gpos, lpos)
    g_other, _ = encoder(globals_, locals_ + torch.randn_like(locals_), gpos, lpos)  # (a shift alone: LN drops it)
    assert (g_out - g_other).abs().max() > 1e-3  # the globals do read the locals
    encoder.blocks.apply(lambda m: setattr(m, "stop_gradient", False) if isinstance(m, ReConBlock) else None)
    finetune = _grads(encoder, lambda g, v: (g ** 2).sum())
    assert finetune["blocks.0.attn.kv.weight"].abs().max() > 0  # fine-tuning: the globals' loss reaches the locals


def test_one_block_is_its_written_form():
    torch.manual_seed(1)
    block = ReConBlock(16, 4)
    g, v = _inputs(seed=2)[:2]
    out_g, out_v = block(g, v)
    vn = block.norm1(v)
    gn = block.norm1_global(g)
    gn = gn + block.attn_global(gn, vn)
    vn = vn + block.attn(vn, vn)
    gn, vn = block.norm2_global(gn), block.norm2(vn)
    torch.testing.assert_close(out_g, gn + block.mlp_global(gn))
    torch.testing.assert_close(out_v, vn + block.mlp(vn))
    # attention against the textbook formula on one head
    att = block.attn
    q = att.q(vn)
    k, val = att.kv(vn).chunk(2, -1)
    ref = []
    for head in range(4):
        sl = slice(4 * head, 4 * head + 4)
        w = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / 2.0, -1)
        ref.append(w @ val[..., sl])
    torch.testing.assert_close(att(vn, vn), att.proj(torch.cat(ref, -1)), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="not divisible"):
        ReConBlock(10, 4)
