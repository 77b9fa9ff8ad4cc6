use burn::backend::ndarray::NdArrayDevice;
use burn::backend::NdArray;
use burn::prelude::*;

use super::*;

type B = NdArray<f32>;

fn gpt2(n_embd: usize, n_layer: usize, n_head: usize, n_positions: usize) -> ModelSpec {
    ModelSpec::Gpt2 { n_embd, n_layer, n_head, n_positions }
}

#[test]
fn gpt2_parameter_count_matches_the_paper_spec() {
    // paper-spec §3.7: GPT-2 e=128, L=2, n_positions=101, d=20 has 425,473 parameters.
    let m = IclModel::<B>::new(&gpt2(128, 2, 8, 101), 20, 0, &NdArrayDevice::Cpu);
    assert_eq!(m.num_params(), 425_473);
}

#[test]
fn gpt2_init_follows_hf() {
    let (e, l) = (64, 3);
    let m = IclModel::<B>::new(&gpt2(e, l, 4, 20), 5, 1, &NdArrayDevice::Cpu);
    let Backbone::Gpt2(g) = &m.backbone;
    let std = |t: Tensor<B, 2>| {
        let v: Vec<f32> = t.into_data().iter::<f32>().collect();
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32).sqrt()
    };
    let blk = &g.blocks[0];
    assert!((std(blk.attn.c_attn.weight.val()) - 0.02).abs() < 0.002);
    let scaled = 0.02 / ((2 * l) as f32).sqrt();
    assert!((std(blk.mlp.c_proj.weight.val()) - scaled).abs() < 0.1 * scaled);
    assert!((std(blk.attn.c_proj.weight.val()) - scaled).abs() < 0.1 * scaled);
    let bias: Vec<f32> = blk.mlp.c_fc.bias.as_ref().unwrap().val().into_data().iter::<f32>().collect();
    assert!(bias.iter().all(|&b| b == 0.0));
    // Read-in keeps PyTorch's default U(±1/sqrt(fan_in)).
    let w: Vec<f32> = m.read_in.weight.val().into_data().iter::<f32>().collect();
    let bound = 1.0 / 5f32.sqrt();
    assert!(w.iter().all(|x| x.abs() <= bound) && w.iter().any(|x| x.abs() > 0.8 * bound));
}

#[test]
fn same_seed_same_weights() {
    let spec = gpt2(16, 1, 2, 8);
    let a = IclModel::<B>::new(&spec, 3, 9, &NdArrayDevice::Cpu);
    let b = IclModel::<B>::new(&spec, 3, 9, &NdArrayDevice::Cpu);
    let x = Tensor::<B, 3>::ones([1, 4, 3], &NdArrayDevice::Cpu);
    assert_eq!(a.forward(x.clone()).into_data(), b.forward(x).into_data());
}

/// Outputs at positions <= t must not depend on tokens after t.
fn assert_causal(spec: &ModelSpec, d: usize) {
    let dev = NdArrayDevice::Cpu;
    let m = IclModel::<B>::new(spec, d, 3, &dev);
    let t_len = 12;
    let base = Tensor::<B, 3>::random([2, t_len, d], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
    let out = m.forward(base.clone());
    for t in [0, 5, t_len - 2] {
        let noise = Tensor::<B, 3>::random([2, t_len - t - 1, d], burn::tensor::Distribution::Normal(0.0, 5.0), &dev);
        let perturbed = Tensor::cat(vec![base.clone().slice([0..2, 0..t + 1, 0..d]), noise], 1);
        let out2 = m.forward(perturbed);
        let before = out.clone().slice([0..2, 0..t + 1, 0..1]);
        let before2 = out2.clone().slice([0..2, 0..t + 1, 0..1]);
        before.into_data().assert_approx_eq::<f32>(&before2.into_data(), burn::tensor::Tolerance::absolute(1e-5));
        // And the perturbation is visible afterwards, so the test can fail.
        let after = out.clone().slice([0..2, t + 1..t_len, 0..1]);
        let after2 = out2.slice([0..2, t + 1..t_len, 0..1]);
        let moved: f32 = (after - after2).abs().max().into_scalar();
        assert!(moved > 1e-4, "outputs after {t} did not change");
    }
}

#[test]
fn gpt2_is_causal() {
    assert_causal(&gpt2(32, 2, 4, 8), 4);
}

#[test]
fn predict_at_x_reads_the_x_tokens() {
    let dev = NdArrayDevice::Cpu;
    let m = IclModel::<B>::new(&gpt2(16, 1, 2, 8), 3, 0, &dev);
    let tokens = Tensor::<B, 3>::random([2, 8, 3], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
    let all = m.forward(tokens.clone()); // (2, 8, 1)
    let at_x = m.predict_at_x(tokens); // (2, 4)
    let want: Vec<f32> = all.into_data().iter::<f32>().step_by(2).collect();
    let got: Vec<f32> = at_x.into_data().iter::<f32>().collect();
    for (a, b) in want.iter().zip(&got) {
        assert!((a - b).abs() < 1e-6);
    }
}
