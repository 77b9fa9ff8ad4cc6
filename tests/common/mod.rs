//! Shared by the integration tests: a sweep of models small enough that a step takes
//! milliseconds on a CPU, and waiting for a line of a child's output. Each test crate uses
//! some of it.
#![allow(dead_code)]

/// Reads `out` line by line until a line satisfies `found` or the stream ends (the child
/// exited); true when found. The rest of the stream stays unread in `out`.
pub fn read_until(out: &mut impl std::io::BufRead, found: impl Fn(&str) -> bool) -> bool {
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            return false;
        }
        if found(&line) {
            return true;
        }
    }
}

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
