//! The terminal lab notebook (`icl-lab` with no command): one thread owns the app state and
//! draws; an input thread and the worker pool talk to it over channels; redraws are coalesced
//! under a frame cap so a slow SSH link is not flooded.

pub mod app;
pub mod form;
pub mod keymap;
#[cfg(test)]
mod tests;
pub mod ui;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, tick, unbounded, Receiver};
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, DisableMouseCapture, EnableMouseCapture, Event, KeyEventKind};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen};
use ratatui::Terminal;

use crate::runtime::lab::Lab;
use crate::runtime::slurm::watch::{SlurmUpdate, Watcher, POLL_EVERY};
use crate::runtime::{PoolEvent, StopReason};
use crate::store::{SledStore, StoreError};
use crate::train::TrainEvent;
use app::{App, Command};
use ui::Theme;

pub struct TuiOptions {
    pub store: PathBuf,
    pub read_only: bool,
    pub mouse: bool,
    pub ascii: bool,
    /// Redraws per second at most.
    pub fps: u32,
    /// The pool's slot groups: (device, slots).
    pub slots: Vec<(crate::runtime::Device, usize)>,
    pub experiments: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("terminal: {0}")]
    Io(#[from] std::io::Error),
}

/// Opens the store; a store held by another icl-lab (a run, a notebook left running) is
/// followed read-only: its runs show up live, a few seconds behind.
fn open_lab(opts: &TuiOptions) -> Result<Lab, TuiError> {
    match SledStore::open(&opts.store) {
        Ok(store) if opts.read_only => Ok(Lab::read_only(store)),
        Ok(store) => Ok(Lab::open(store, opts.slots.clone())),
        Err(StoreError::InUse { pid, .. }) => Ok(Lab::follow(&opts.store, pid)?),
        Err(e) => Err(e.into()),
    }
}

type Term = Terminal<CrosstermBackend<std::io::Stdout>>;

fn enter(mouse: bool) -> std::io::Result<Term> {
    crate::runtime::kernel_cache::silence_notices();
    enable_raw_mode()?;
    let mut out = std::io::stdout();
    execute!(out, EnterAlternateScreen)?;
    if mouse {
        execute!(out, EnableMouseCapture)?;
    }
    Terminal::new(CrosstermBackend::new(out))
}

fn leave(mouse: bool) {
    let mut out = std::io::stdout();
    if mouse {
        let _ = execute!(out, DisableMouseCapture);
    }
    let _ = execute!(out, LeaveAlternateScreen);
    let _ = disable_raw_mode();
    let _ = out.flush();
}

fn input_thread() -> Receiver<Event> {
    let (tx, rx) = unbounded();
    std::thread::Builder::new()
        .name("tui-input".into())
        .spawn(move || loop {
            match event::poll(Duration::from_millis(200)) {
                Ok(true) => match event::read() {
                    Ok(ev) => {
                        if tx.send(ev).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                },
                Ok(false) => {}
                Err(_) => return,
            }
        })
        .expect("spawn the input thread");
    rx
}

/// GPU utilisation and memory from nvidia-smi, if it is there.
fn gpu_info() -> std::collections::HashMap<crate::runtime::Device, String> {
    let mut out = std::collections::HashMap::new();
    let Ok(o) = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=index,utilization.gpu,memory.used,memory.total", "--format=csv,noheader,nounits"])
        .output()
    else {
        return out;
    };
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if let [i, util, used, total] = f[..] {
            if let Ok(i) = i.parse() {
                out.insert(crate::runtime::Device::Cuda(i), format!("{util}% busy, {used}/{total} MiB"));
            }
        }
    }
    out
}

pub fn run(opts: TuiOptions) -> Result<(), TuiError> {
    let lab = open_lab(&opts)?;
    let theme = Theme { color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()), ascii: opts.ascii };
    let mut app = App::new(&lab, opts.experiments.clone());
    app.mouse = opts.mouse;
    let pool_events = lab.events().unwrap_or_else(|| unbounded().1);
    // Slurm arrays launched from this notebook: surveyed off the UI thread.
    let watcher = Watcher::spawn(opts.store.clone(), lab.writable_store(), POLL_EVERY);

    // Leave the terminal usable even if something panics.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        leave(true);
        hook(info);
    }));
    let mut term = enter(app.mouse)?;
    let input = input_thread();
    let ticker = tick(Duration::from_secs(1));
    let frame = Duration::from_secs_f64(1.0 / opts.fps.max(1) as f64);
    let mut last_draw = Instant::now() - frame;
    let mut dirty = true;
    let mut last_gpu = Instant::now() - Duration::from_secs(10);
    let outcome = loop {
        if dirty && last_draw.elapsed() >= frame {
            term.draw(|f| ui::draw(f, &app, theme))?;
            last_draw = Instant::now();
            dirty = false;
        }
        watcher.want(app.view == app::View::Queue);
        let wait = if dirty { frame.saturating_sub(last_draw.elapsed()) } else { Duration::from_secs(3600) };
        let mut command = None;
        select! {
            recv(input) -> ev => match ev {
                Ok(Event::Key(k)) if k.kind != KeyEventKind::Release => {
                    command = app.on_key(k, &lab);
                    dirty = true;
                }
                Ok(Event::Resize(..)) => dirty = true,
                Ok(Event::Mouse(m)) => {
                    // The wheel scrolls like j/k; clicks are left to text selection (Shift).
                    use ratatui::crossterm::event::{KeyCode, MouseEventKind};
                    let code = match m.kind {
                        MouseEventKind::ScrollUp => Some(KeyCode::Up),
                        MouseEventKind::ScrollDown => Some(KeyCode::Down),
                        _ => None,
                    };
                    if let Some(code) = code {
                        command = app.on_key(app::key(code), &lab);
                        dirty = true;
                    }
                }
                Ok(_) => {}
                Err(_) => break None,
            },
            recv(pool_events) -> ev => {
                if let Ok(ev) = ev {
                    match ev {
                        PoolEvent::Train { run, event: TrainEvent::Progress { step } } => app.live.entry(run).or_default().step = step,
                        PoolEvent::Train { run, event: TrainEvent::Step(m) } => {
                            let l = app.live.entry(run).or_default();
                            l.steps_per_s = m.steps_per_s;
                            l.step = l.step.max(m.step);
                        }
                        PoolEvent::Train { .. } => {}
                        PoolEvent::Started { .. } | PoolEvent::Finished { .. } => app.refresh(&lab),
                    }
                    dirty = true;
                }
            },
            recv(watcher.updates) -> u => {
                if let Ok(u) = u {
                    if matches!(u, SlurmUpdate::Collected { result: Ok(_), .. }) {
                        lab.store_changed();
                    }
                    app.on_slurm(u);
                    app.refresh(&lab);
                    dirty = true;
                }
            },
            recv(ticker) -> _ => {
                lab.follow_tick();
                app.refresh(&lab);
                if app.view == app::View::Queue && last_gpu.elapsed() > Duration::from_secs(2) {
                    app.gpu_info = gpu_info();
                    last_gpu = Instant::now();
                }
                dirty = true;
            },
            default(wait) => {}
        }
        match command {
            None => {}
            Some(Command::ToggleMouse) => {
                if app.mouse {
                    execute!(term.backend_mut(), EnableMouseCapture)?;
                } else {
                    execute!(term.backend_mut(), DisableMouseCapture)?;
                }
            }
            Some(Command::Suspend) => {
                leave(app.mouse);
                unsafe {
                    libc::raise(libc::SIGTSTP);
                }
                term = enter(app.mouse)?;
                term.clear()?;
                dirty = true;
            }
            Some(Command::Collect(dir)) => watcher.collect(dir),
            Some(c @ (Command::QuitStop | Command::QuitDetach)) => break Some(c),
        }
    };
    leave(app.mouse);
    drop(watcher);
    match outcome {
        Some(Command::QuitDetach) => {
            let n = lab.alive();
            eprintln!("icl-lab: {n} run(s) continue; this process (pid {}) exits when they finish.", std::process::id());
            eprintln!("Follow them with `icl-lab ls` once it has exited, or keep this terminal open.");
            // Survive the SSH session closing.
            unsafe {
                libc::signal(libc::SIGHUP, libc::SIG_IGN);
            }
            lab.wait_idle();
        }
        _ => {
            if lab.alive() > 0 {
                eprintln!("icl-lab: stopping {} run(s) after their current step (resumable)...", lab.alive());
            }
            lab.stop_all(StopReason::Interrupt);
        }
    }
    drop(lab);
    Ok(())
}
