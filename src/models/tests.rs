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
    let m = IclModel::<B>::new(&gpt2(128, 2, 8, 101), 20, 1, 0, &NdArrayDevice::Cpu);
    assert_eq!(m.num_params(), 425_473);
}

#[test]
fn gpt2_init_follows_hf() {
    let (e, l) = (64, 3);
    let m = IclModel::<B>::new(&gpt2(e, l, 4, 20), 5, 1, 1, &NdArrayDevice::Cpu);
    let Backbone::Gpt2(g) = &m.backbone else { panic!("not a GPT-2") };
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
    let a = IclModel::<B>::new(&spec, 3, 1, 9, &NdArrayDevice::Cpu);
    let b = IclModel::<B>::new(&spec, 3, 1, 9, &NdArrayDevice::Cpu);
    let x = Tensor::<B, 3>::ones([1, 4, 3], &NdArrayDevice::Cpu);
    assert_eq!(a.forward(x.clone()).into_data(), b.forward(x).into_data());
}

/// Outputs at positions <= t must not depend on tokens after t.
fn assert_causal(spec: &ModelSpec, d: usize) {
    let dev = NdArrayDevice::Cpu;
    let m = IclModel::<B>::new(spec, d, 1, 3, &dev);
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

fn spec(text: &str) -> ModelSpec {
    toml::from_str(text).unwrap()
}

#[test]
fn every_architecture_is_causal() {
    assert_causal(&gpt2(32, 2, 4, 8), 4);
    assert_causal(&spec("arch = 'mamba'\nn_embd = 16\nn_layer = 2"), 4);
    assert_causal(&spec("arch = 's4'\nn_embd = 16\nn_layer = 2"), 4);
    assert_causal(&spec("arch = 's4_mamba'\nn_embd = 16\nn_layer = 2\ndropout = 0.0"), 4);
    assert_causal(&spec("arch = 'mambaformer'\nn_embd = 16\nn_layer = 2\nn_head = 2"), 4);
    assert_causal(&spec("arch = 'hybrid'\nn_embd = 16\nn_layer = 2\nn_head = 2\nn_positions = 12"), 4);
}

/// paper-spec §3.7. The paper's code also counts `MixerModel.embedding`, an unused 1 x e
/// table, in every Mamba-family total; we do not build it, so our count is e smaller.
#[test]
fn parameter_counts_match_the_paper_spec_table() {
    let count = |text: &str, d: usize| IclModel::<B>::new(&spec(text), d, 1, 0, &NdArrayDevice::Cpu).num_params();
    assert_eq!(count("arch = 'mamba'\nn_embd = 128\nn_layer = 4", 20), 470_145 - 128);
    assert_eq!(count("arch = 'mambaformer'\nn_embd = 128\nn_layer = 4", 20), 486_017 - 128);
    assert_eq!(count("arch = 'hybrid'\nn_embd = 128\nn_layer = 4\nn_positions = 101", 20), 382_209 - 128);
    assert_eq!(count("arch = 'gpt2'\nn_embd = 256\nn_layer = 12\nn_head = 8\nn_positions = 300", 10), 9_634_305);
    assert_eq!(count("arch = 'mamba'\nn_embd = 256\nn_layer = 24", 10), 10_522_369 - 256);
    assert_eq!(count("arch = 'mambaformer'\nn_embd = 256\nn_layer = 24", 10), 8_865_537 - 256);
}

/// The spec's count of a backbone's parameters (what validation bounds) is the built model's,
/// less the read-in and read-out, for every architecture, odd layer counts and non-default
/// state, conv, expansion and Δ rank included.
#[test]
fn the_specs_parameter_count_is_the_built_models() {
    for text in [
        "arch = 'gpt2'\nn_embd = 24\nn_layer = 3\nn_head = 2\nn_positions = 7",
        "arch = 'mamba'\nn_embd = 20\nn_layer = 3",
        "arch = 'mamba'\nn_embd = 16\nn_layer = 2\nd_state = 8\nd_conv = 3\nexpand = 3\ndt_rank = 5",
        "arch = 's4'\nn_embd = 16\nn_layer = 3\nd_state = 6",
        "arch = 's4_mamba'\nn_embd = 12\nn_layer = 2\nd_state = 10\nd_conv = 2\nexpand = 3",
        "arch = 'mambaformer'\nn_embd = 16\nn_layer = 3\nn_head = 2\nd_state = 4",
        "arch = 'mambaformer'\nn_embd = 16\nn_layer = 4",
        "arch = 'hybrid'\nn_embd = 16\nn_layer = 3\nn_head = 2\nn_positions = 9\ndt_rank = 2",
    ] {
        let (d_in, d_out) = (7, 3);
        let spec = spec(text);
        let built = IclModel::<B>::new(&spec, d_in, d_out, 0, &NdArrayDevice::Cpu).num_params();
        let e = spec.n_embd();
        let ends = d_in * e + e + e * d_out + d_out;
        assert_eq!(spec.backbone_parameters(), (built - ends) as f64, "{text}");
    }
}

#[test]
fn mamba_init_follows_mamba_ssm() {
    let m = IclModel::<B>::new(&spec("arch = 'mamba'\nn_embd = 32\nn_layer = 4"), 5, 1, 0, &NdArrayDevice::Cpu);
    let Backbone::Mixer(mm) = &m.backbone else { panic!("not a mixer model") };
    let mixer::Mixer::Mamba(mb) = &mm.blocks[0].mixer else { panic!("not Mamba") };
    let vals = |t: Tensor<B, 1>| t.into_data().iter::<f32>().collect::<Vec<f32>>();
    // softplus(dt bias) lies in [1e-3, 1e-1].
    for b in vals(mb.dt_proj.bias.as_ref().unwrap().val()) {
        let dt = (1.0 + b.exp()).ln();
        assert!((0.99e-3..=1.01e-1).contains(&dt), "dt {dt}");
    }
    // A = -(1..N) in every channel; D = 1.
    let a: Vec<f32> = mb.a_log.val().exp().into_data().iter::<f32>().collect();
    assert_eq!(a[..16].iter().map(|v| v.round() as i32).collect::<Vec<_>>(), (1..=16).collect::<Vec<_>>());
    assert!(vals(mb.d.val()).iter().all(|&d| d == 1.0));
    // out_proj: U(±1/sqrt(E)) / sqrt(n_layer) = ±1/8/2.
    let w: Vec<f32> = mb.out_proj.weight.val().into_data().iter::<f32>().collect();
    let bound = 1.0 / 8.0 / 2.0;
    assert!(w.iter().all(|x| x.abs() <= bound) && w.iter().any(|x| x.abs() > 0.9 * bound));
}

#[test]
fn hybrid_position_table_counts_tokens() {
    let m = IclModel::<B>::new(&spec("arch = 'hybrid'\nn_embd = 16\nn_layer = 2\nn_head = 2\nn_positions = 12"), 3, 1, 0, &NdArrayDevice::Cpu);
    let Backbone::Mixer(mm) = &m.backbone else { panic!() };
    assert_eq!(mm.wpe.as_ref().unwrap().dims(), [12, 16]);
}

/// A stacked model's member k computes exactly what the plain model of seed k computes, on
/// its own rows of the batch, and gets the plain model's gradients: for every architecture.
#[test]
fn stacked_members_equal_their_plain_models_forward_and_backward() {
    use burn::backend::Autodiff;
    use burn::module::{ModuleVisitor, Param};
    type Ad = Autodiff<NdArray<f64>>;
    let dev = NdArrayDevice::Cpu;
    let seeds = [4u64, 9, 2];
    let (b, t, d) = (2, 7, 3);
    /// Gradients of every parameter, host values in visiting order.
    struct Grads<'a>(&'a <Ad as burn::tensor::backend::AutodiffBackend>::Gradients, Vec<Vec<f64>>);
    impl ModuleVisitor<Ad> for Grads<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Ad, D>>) {
            let g = param.val().grad(self.0).expect("every parameter has a gradient");
            self.1.push(g.into_data().iter::<f64>().collect());
        }
    }
    let grads_of = |m: &IclModel<Ad>, x: Tensor<Ad, 3>, proj: Tensor<Ad, 3>| {
        let out = m.forward(x);
        let g = (out.clone() * proj).sum().backward();
        let mut v = Grads(&g, Vec::new());
        m.visit(&mut v);
        (out.into_data().iter::<f64>().collect::<Vec<f64>>(), v.1)
    };
    for text in [
        "arch = 'gpt2'\nn_embd = 16\nn_layer = 2\nn_head = 2\nn_positions = 8",
        "arch = 'mamba'\nn_embd = 8\nn_layer = 2",
        "arch = 's4'\nn_embd = 8\nn_layer = 2",
        "arch = 's4_mamba'\nn_embd = 8\nn_layer = 2\ndropout = 0.0",
        "arch = 'mambaformer'\nn_embd = 8\nn_layer = 2\nn_head = 2",
        "arch = 'hybrid'\nn_embd = 8\nn_layer = 2\nn_head = 2\nn_positions = 8",
    ] {
        let spec = spec(text);
        let stacked = IclModel::<Ad>::stacked(&spec, d, 1, &seeds, &dev);
        assert_eq!(stacked.members(), 3, "{text}");
        let k = seeds.len();
        let x = Tensor::<Ad, 3>::random([k * b, t, d], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
        let proj = Tensor::<Ad, 3>::random([k * b, t, 1], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
        let (out, grads) = grads_of(&stacked, x.clone(), proj.clone());
        for (m, &seed) in seeds.iter().enumerate() {
            let plain = IclModel::<Ad>::new(&spec, d, 1, seed, &dev);
            assert_eq!(plain.members(), 1);
            let rows = |v: Tensor<Ad, 3>| v.narrow(0, m * b, b);
            let (want_out, want_grads) = grads_of(&plain, rows(x.clone()), rows(proj.clone()));
            let got_out = &out[m * b * t..(m + 1) * b * t];
            let close = |g: &[f64], w: &[f64]| g.iter().zip(w).all(|(g, w)| (g - w).abs() <= 1e-9 * (1.0 + w.abs()));
            assert!(close(got_out, &want_out), "{text}: member {m}'s outputs");
            for (i, (g, w)) in grads.iter().zip(&want_grads).enumerate() {
                let n = w.len();
                assert_eq!(g.len(), k * n, "{text}: parameter {i} rows");
                assert!(close(&g[m * n..(m + 1) * n], w), "{text}: member {m}'s gradient of parameter {i}");
            }
            // Taking the member back out gives the plain model's parameters.
            let back = stacked.member(m);
            assert_eq!(back.members(), 1);
            let y = Tensor::<Ad, 3>::ones([1, t, d], &dev);
            assert_eq!(back.forward(y.clone()).into_data(), plain.forward(y).into_data(), "{text}: member {m} taken out");
        }
    }
}

/// `members::sum_per_member` sums each member's rows whatever the rank, and
/// `view_by_member` puts member m's rows at index m.
#[test]
fn member_sums_and_views_keep_each_members_rows() {
    use super::members::{sum_per_member, view_by_member};
    type B64 = NdArray<f64>;
    let dev = Default::default();
    let values: Vec<f64> = (0..24).map(|v| v as f64).collect();
    let flat = Tensor::<B64, 1>::from_data(TensorData::new(values.clone(), [24]), &dev);
    // Members of 8 values each: 0..8, 8..16, 16..24.
    let want = [28.0, 92.0, 156.0];
    assert_eq!(sum_per_member(flat.clone(), 3).into_data().to_vec::<f64>().unwrap(), want);
    assert_eq!(sum_per_member(flat.clone().reshape([6, 4]), 3).into_data().to_vec::<f64>().unwrap(), want);
    assert_eq!(sum_per_member(flat.clone().reshape([6, 2, 2]), 3).into_data().to_vec::<f64>().unwrap(), want);
    let view = view_by_member(flat.reshape([6, 2, 2]), 3);
    assert_eq!(view.dims(), [3, 2, 2, 2]);
    assert_eq!(view.narrow(0, 1, 1).into_data().to_vec::<f64>().unwrap(), values[8..16]);
}
