//! Shared by the sweep and Slurm tests: a sweep of models small enough that a step takes
//! milliseconds on a CPU.

/// A sweep file `name` over `seeds` (TOML list text) of a tiny GPT-2, and with `mamba` a tiny
/// Mamba too, each trained `steps` steps on the CPU.
pub fn tiny_sweep(name: &str, seeds: &str, steps: usize, mamba: bool) -> String {
    let mamba = if mamba { "[[models]]\narch = \"mamba\"\nn_embd = 16\nn_layer = 1\n" } else { "" };
    format!(
        r#"
name = "{name}"
seeds = {seeds}
device = "cpu"
[task]
kind = "linear_regression"
n_dims = 3
[train]
steps = {steps}
batch_size = 8
lr = 1e-3
eval_every = {eval_every}
eval_prompts = 16
log_every = 1
[train.curriculum]
dims = {{ start = 3, end = 3 }}
points = {{ start = 5, end = 5 }}
[[models]]
arch = "gpt2"
n_embd = 16
n_layer = 1
n_head = 2
n_positions = 5
{mamba}"#,
        eval_every = (steps / 2).clamp(1, 20),
    )
}
