//! Drawing: one function per view, all reading `App` only.

use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Borders, Cell, Chart, Clear, Dataset, GraphType, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use super::app::{App, ChartOpts, Popup, Series, View};
use super::form::{FieldId, ARCHS, FIELDS, TASKS};
use crate::tasks::Summary;

/// The matrix's row titles, as the paper names the tasks (same order as `TASKS`).
const TASK_TITLES: [&str; 10] = [
    "linear",
    "sparse linear",
    "2-layer NN",
    "decision tree",
    "orthogonal outlier",
    "many outlier",
    "sparse parity",
    "CoT I/O",
    "vector MQAR",
    "token MQAR",
];
const _: () = assert!(TASK_TITLES.len() == TASKS.len());
use super::keymap::{key_name, BINDINGS};
use crate::report::runs::{config_diff, final_metrics, fmt_opt, fmt_params, fmt_time};
use crate::store::{RunRecord, Status};

/// Colours on or off (`NO_COLOR`), Braille or plain markers (`--ascii`).
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    pub color: bool,
    pub ascii: bool,
}

impl Theme {
    fn fg(self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }
    fn marker(self) -> Marker {
        if self.ascii {
            Marker::Dot
        } else {
            Marker::Braille
        }
    }
    fn series(self, i: usize) -> Style {
        const C: [Color; 8] =
            [Color::Cyan, Color::Yellow, Color::Magenta, Color::Green, Color::Red, Color::Blue, Color::LightCyan, Color::LightYellow];
        self.fg(C[i % C.len()])
    }
    fn status(self, s: &Status) -> Style {
        self.fg(match s {
            Status::Done => Color::Green,
            Status::Running => Color::Cyan,
            Status::Queued => Color::Blue,
            Status::Failed { .. } | Status::Diverged { .. } => Color::Red,
            Status::Cancelled | Status::Interrupted => Color::Yellow,
        })
    }
    fn selected(self) -> Style {
        if self.color {
            Style::default().bg(Color::DarkGray).add_modifier(Modifier::BOLD)
        } else {
            Style::default().add_modifier(Modifier::REVERSED)
        }
    }
}

pub fn draw(f: &mut Frame, app: &App, theme: Theme) {
    let [top, body, bottom] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(0), Constraint::Length(1)]).areas(f.area());
    draw_tabs(f, top, app, theme);
    match app.view {
        View::Runs => draw_runs(f, body, app, theme),
        View::Run => draw_run(f, body, app, theme),
        View::Compare => draw_compare(f, body, app, theme),
        View::Matrix => draw_matrix(f, body, app, theme),
        View::New => draw_form(f, body, app, theme),
        View::Queue => draw_queue(f, body, app, theme),
        View::Help => draw_help(f, body, theme),
    }
    draw_status(f, bottom, app, theme);
    if let Some(p) = &app.popup {
        draw_popup(f, p, app, theme);
    }
}

fn draw_tabs(f: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let mut spans = vec![Span::styled(" icl-lab ", theme.fg(Color::Black).bg(if theme.color { Color::Cyan } else { Color::Reset }))];
    for (i, (view, name)) in View::TABS.iter().enumerate() {
        let style = if *view == app.view { theme.selected() } else { Style::default() };
        spans.push(Span::raw(" "));
        spans.push(Span::styled(format!("{} {name}", i + 1), style));
    }
    let alive = app.queue.running.len();
    let right = if area.width >= 100 {
        format!(
            "{} runs{}{}  ? help ",
            app.runs.len(),
            if alive > 0 { format!(", {alive} running") } else { String::new() },
            if app.location.starts_with("following") {
                format!("  [{}]", app.location.split(':').next().unwrap_or("read-only"))
            } else if app.read_only {
                "  [read-only]".to_string()
            } else {
                String::new()
            }
        )
    } else {
        format!("{}{} ", if alive > 0 { format!("{alive} live") } else { String::new() }, if app.read_only { " ro" } else { "" })
    };
    let [l, r] = Layout::horizontal([Constraint::Min(0), Constraint::Length(right.chars().count() as u16)]).areas(area);
    f.render_widget(Paragraph::new(Line::from(spans)), l);
    f.render_widget(Paragraph::new(right).alignment(Alignment::Right), r);
}

fn draw_status(f: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let text = if let Some(input) = &app.filter_input {
        let err = app.filter_error.as_deref().map_or(String::new(), |e| format!("   ({e})"));
        Line::from(vec![Span::raw("/"), Span::raw(input.clone()), Span::styled("█", theme.fg(Color::Gray)), Span::styled(err, theme.fg(Color::Red))])
    } else if let Some(m) = &app.message {
        Line::from(m.clone())
    } else {
        let hint = match app.view {
            View::Runs => "Enter open  space select  c compare  / filter  s sort  x cancel  5 new",
            View::Run => "L log-y  w x-axis  +/- smoothing  n note  t tags  x cancel  Esc back",
            View::Compare => "L log-y  +/- smoothing  Esc back",
            View::Matrix => "arrows move  Enter open the run",
            View::New => "Enter edit/toggle  ←→ choose  Ctrl-r launch  Ctrl-l load file  Ctrl-s save",
            View::Queue => "x cancel  Enter open  c collect a Slurm array",
            View::Help => "Esc back",
        };
        Line::from(Span::styled(hint, theme.fg(Color::DarkGray)))
    };
    f.render_widget(Paragraph::new(text), area);
}

fn progress_cell(r: &RunRecord, app: &App, width: usize) -> String {
    let live = app.live.get(&r.id);
    let step = live.map_or(r.step, |l| l.step.max(r.step));
    if r.status != Status::Running {
        return r.status.label().to_string();
    }
    let total = r.total_steps().max(1);
    let frac = (step as f64 / total as f64).min(1.0);
    let filled = (frac * width as f64).round() as usize;
    let rate = live.map(|l| l.steps_per_s).filter(|s| *s > 0.0).or(r.last.as_ref().map(|m| m.steps_per_s)).unwrap_or(0.0);
    let eta = if rate > 0.0 { fmt_secs((total - step.min(total)) as f64 / rate) } else { "?".into() };
    format!("{}{} {:>3.0}% {eta}", "█".repeat(filled), "░".repeat(width - filled), frac * 100.0)
}

pub fn fmt_secs(s: f64) -> String {
    let s = s.max(0.0) as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

fn draw_runs(f: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let title = if app.filter.is_empty() {
        format!(" runs ({}) sorted by {}{} ", app.visible.len(), app.sort.name(), if app.sort_desc { " ↓" } else { " ↑" })
    } else {
        format!(" runs ({} of {}) filter: {} ", app.visible.len(), app.runs.len(), app.filter)
    };
    let block = Block::default().borders(Borders::ALL).title(title);
    let inner_h = area.height.saturating_sub(3) as usize;
    // Keep the cursor in view: the table is drawn from `offset`.
    let offset = app.cursor.saturating_sub(inner_h.saturating_sub(1));
    let wide = area.width >= 120;
    let rows = app.visible.iter().enumerate().skip(offset).take(inner_h.max(1)).map(|(i, &ri)| {
        let r = &app.runs[ri];
        let sel = if app.selected.contains(&r.id) { "●" } else { " " };
        let mut cells = vec![
            Cell::from(sel),
            Cell::from(r.id.to_string()),
            Cell::from(progress_cell(r, app, if wide { 12 } else { 6 })).style(theme.status(&r.status)),
            Cell::from(r.task()),
            Cell::from(r.arch()),
            Cell::from(fmt_params(r.params)),
            Cell::from(format!("{}/{}", r.step, r.total_steps())),
            Cell::from(fmt_opt(r.final_error)),
        ];
        if wide {
            cells.push(Cell::from(r.tags.iter().cloned().collect::<Vec<_>>().join(",")));
            cells.push(Cell::from(fmt_time(r)));
            cells.push(Cell::from(r.spec.name.clone()));
        }
        let row = Row::new(cells);
        if i == app.cursor {
            row.style(theme.selected())
        } else {
            row
        }
    });
    let mut header = vec!["", "ID", "STATUS", "TASK", "ARCH", "PARAMS", "STEP", "FINAL ERR"];
    let mut widths = vec![
        Constraint::Length(1),
        Constraint::Length(5),
        Constraint::Length(if wide { 24 } else { 12 }),
        Constraint::Length(24),
        Constraint::Length(11),
        Constraint::Length(7),
        Constraint::Length(13),
        Constraint::Length(9),
    ];
    if wide {
        header.extend(["TAGS", "CREATED", "NAME"]);
        widths.extend([Constraint::Length(16), Constraint::Length(16), Constraint::Min(10)]);
    }
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(Style::default().add_modifier(Modifier::BOLD)))
        .block(block)
        .column_spacing(1);
    f.render_widget(table, area);
    if app.runs.is_empty() {
        let msg = Paragraph::new("No runs yet. Press 5 to define an experiment (Ctrl-l loads one from experiments/), Ctrl-r to launch.")
            .wrap(Wrap { trim: true })
            .alignment(Alignment::Center);
        let [_, mid, _] = Layout::vertical([Constraint::Min(0), Constraint::Length(3), Constraint::Min(0)]).areas(area);
        f.render_widget(msg, mid.inner(ratatui::layout::Margin::new(2, 0)));
    }
}

/// Exponential moving average, as TensorBoard's smoothing slider.
pub fn smooth(points: &[(f64, f64)], weight: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(points.len());
    let mut last = None;
    for &(x, y) in points {
        if !y.is_finite() {
            continue;
        }
        let v = match last {
            None => y,
            Some(prev) => prev * weight + y * (1.0 - weight),
        };
        last = Some(v);
        out.push((x, v));
    }
    out
}

fn loss_points(s: &Series, opts: ChartOpts) -> Vec<(f64, f64)> {
    let raw: Vec<(f64, f64)> =
        s.metrics.iter().map(|m| (if opts.wall_x { m.wall_s } else { m.step as f64 }, m.loss as f64)).collect();
    let mut pts = smooth(&raw, opts.smoothing);
    if opts.log_y {
        pts.retain(|p| p.1 > 0.0);
        for p in &mut pts {
            p.1 = p.1.log10();
        }
    }
    pts
}

fn bounds(sets: &[&[(f64, f64)]]) -> ([f64; 2], [f64; 2]) {
    let mut x = [f64::INFINITY, f64::NEG_INFINITY];
    let mut y = x;
    for s in sets {
        for &(a, b) in s.iter() {
            x = [x[0].min(a), x[1].max(a)];
            y = [y[0].min(b), y[1].max(b)];
        }
    }
    if !x[0].is_finite() {
        return ([0.0, 1.0], [0.0, 1.0]);
    }
    if x[1] <= x[0] {
        x[1] = x[0] + 1.0;
    }
    let pad = ((y[1] - y[0]) * 0.05).max(1e-3);
    ([x[0], x[1]], [y[0] - pad, y[1] + pad])
}

fn axis_labels(b: [f64; 2], log: bool) -> Vec<Span<'static>> {
    let fmt = |v: f64| {
        let v = if log { 10f64.powf(v) } else { v };
        if v.abs() >= 1000.0 || (v != 0.0 && v.abs() < 0.01) {
            format!("{v:.1e}")
        } else {
            format!("{v:.3}")
        }
    };
    vec![Span::raw(fmt(b[0])), Span::raw(fmt((b[0] + b[1]) / 2.0)), Span::raw(fmt(b[1]))]
}

fn x_labels(b: [f64; 2]) -> Vec<Span<'static>> {
    vec![Span::raw(format!("{:.0}", b[0])), Span::raw(format!("{:.0}", (b[0] + b[1]) / 2.0)), Span::raw(format!("{:.0}", b[1]))]
}

fn chart<'a>(
    title: String,
    border: Style,
    datasets: Vec<Dataset<'a>>,
    all: &[&[(f64, f64)]],
    log: bool,
    x_title: &'a str,
) -> Chart<'a> {
    let (xb, yb) = bounds(all);
    Chart::new(datasets)
        .block(Block::default().borders(Borders::ALL).title(title).border_style(border))
        .x_axis(Axis::default().title(x_title).bounds(xb).labels(x_labels(xb)))
        .y_axis(Axis::default().bounds(yb).labels(axis_labels(yb, log)))
        .legend_position(Some(ratatui::widgets::LegendPosition::TopRight))
        .hidden_legend_constraints((Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)))
}

/// The ICL curve of the latest evaluation: (examples, error) for the model and baselines.
fn curve_sets(s: &Series) -> Vec<(String, Vec<(f64, f64)>)> {
    let Some(e) = s.evals.last() else { return Vec::new() };
    let pts = |v: &[f32]| v.iter().enumerate().map(|(i, y)| (i as f64, *y as f64)).filter(|p| p.1.is_finite()).collect();
    let mut out = vec![(format!("model @{}", e.step), pts(&e.model.mean))];
    for b in e.variants.iter().chain(&e.baselines) {
        out.push((b.name.clone(), pts(&b.mean)));
    }
    out
}

/// Lines of a failed run's reason shown in the run view at most; its first lines and its last
/// (the end of a child's stderr) are kept.
const MAX_REASON_LINES: usize = 12;

/// `text` broken at its newlines and then every `width` characters, at most `max` lines: the
/// first two, a `...` line and the last ones (under 4: the last `max`).
pub(crate) fn wrapped(text: &str, width: usize, max: usize) -> Vec<String> {
    let width = width.max(1);
    let mut out = Vec::new();
    for line in text.lines() {
        let chars: Vec<char> = line.trim_end().chars().collect();
        if chars.is_empty() {
            continue;
        }
        out.extend(chars.chunks(width).map(|c| c.iter().collect::<String>()));
    }
    if out.len() > max {
        // Too few lines for a head and a gap: the end alone.
        let (head, keep) = if max >= 4 { (2, max - 3) } else { (0, max) };
        let tail = out.split_off(out.len() - keep);
        out.truncate(head);
        if head > 0 {
            out.push("...".into());
        }
        out.extend(tail);
    }
    out
}

fn draw_run(f: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let Some(s) = &app.open else {
        f.render_widget(Paragraph::new("No run open: pick one in the runs view (1) and press Enter."), area);
        return;
    };
    let Some(r) = app.record(s.run) else { return };
    let [left, right] = Layout::horizontal([Constraint::Length(40.min(area.width / 3)), Constraint::Min(0)]).areas(area);
    let border = |i: usize| if app.pane == i { theme.fg(Color::Cyan) } else { Style::default() };

    let status = match &r.status {
        Status::Failed { .. } => r.status.label().to_string(),
        other => other.to_string(),
    };
    let mut lines = vec![Line::from(vec![Span::raw(format!("#{} ", r.id)), Span::styled(status, theme.status(&r.status))])];
    if let Status::Failed { reason } = &r.status {
        // A child's failure carries the end of its stderr: several lines, most wider than the
        // pane. Wrapped here, so that the last line (usually the cause) is seen.
        let width = usize::from(left.width.saturating_sub(2)).max(8);
        lines.extend(wrapped(reason, width, MAX_REASON_LINES).into_iter().map(|l| Line::from(l).style(theme.status(&r.status))));
    }
    lines.extend([
        Line::from(format!("{} x {}", r.task(), r.arch())),
        Line::from(format!("params {}  seed {}", fmt_params(r.params), r.spec.seed)),
        Line::from(format!("step {}/{}  {}", r.step, r.total_steps(), r.device.as_deref().unwrap_or("-"))),
        Line::from(format!("final error {}", fmt_opt(r.final_error))),
        Line::from(format!("tags: {}", r.tags.iter().cloned().collect::<Vec<_>>().join(", "))),
    ]);
    if !r.note.is_empty() {
        lines.push(Line::from("note:"));
        lines.extend(r.note.lines().map(|l| Line::from(format!("  {l}"))));
    }
    lines.push(Line::from(""));
    lines.extend(r.spec.to_toml().lines().filter(|l| !l.is_empty()).map(|l| Line::from(l.to_string())));
    f.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(format!(" {} ", r.spec.name)).border_style(border(0))),
        left,
    );

    let [top, bottom] = Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(right);
    let loss = loss_points(s, app.chart);
    let title = format!(
        " loss{}, smoothing {:.1}, x = {} ",
        if app.chart.log_y { " (log)" } else { "" },
        app.chart.smoothing,
        if app.chart.wall_x { "seconds" } else { "step" }
    );
    let ds = vec![Dataset::default().name("loss").marker(theme.marker()).graph_type(GraphType::Line).style(theme.series(0)).data(&loss)];
    f.render_widget(chart(title, border(1), ds, &[&loss], app.chart.log_y, ""), top);

    let sets = curve_sets(s);
    let all: Vec<&[(f64, f64)]> = sets.iter().map(|(_, p)| p.as_slice()).collect();
    let ds: Vec<Dataset> = sets
        .iter()
        .enumerate()
        .map(|(i, (name, p))| Dataset::default().name(name.clone()).marker(theme.marker()).graph_type(GraphType::Line).style(theme.series(i)).data(p))
        .collect();
    let (title, x_title) = match s.evals.last() {
        None => (" ICL curve: no evaluation yet ".to_string(), "examples"),
        Some(e) => {
            let metric = if e.metric.is_empty() { "error" } else { e.metric.as_str() };
            match e.summary {
                Summary::LastPosition => (format!(" ICL curve: {metric} vs in-context examples "), "examples"),
                Summary::MeanOverPositions => (format!(" ICL curve: {metric} vs position of the key asked for "), "key position"),
            }
        }
    };
    f.render_widget(chart(title, border(2), ds, &all, false, x_title), bottom);
}

/// Runs that differ only in seed (and name) form one group: drawn as mean with a min-max band.
fn group_key(r: &RunRecord) -> String {
    let mut spec = r.spec.clone();
    spec.seed = 0;
    spec.name = String::new();
    spec.device = crate::spec::DeviceSpec::Auto;
    serde_json::to_string(&spec).expect("specs serialise")
}

/// Mean, min and max over series aligned by x (points present in every member).
fn band(members: &[Vec<(f64, f64)>]) -> [Vec<(f64, f64)>; 3] {
    let n = members.iter().map(Vec::len).min().unwrap_or(0);
    let mut out = [Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n)];
    for i in 0..n {
        let x = members[0][i].0;
        let ys: Vec<f64> = members.iter().map(|m| m[i].1).collect();
        out[0].push((x, ys.iter().sum::<f64>() / ys.len() as f64));
        out[1].push((x, ys.iter().cloned().fold(f64::INFINITY, f64::min)));
        out[2].push((x, ys.iter().cloned().fold(f64::NEG_INFINITY, f64::max)));
    }
    out
}

fn draw_compare(f: &mut Frame, area: Rect, app: &App, theme: Theme) {
    if app.compare.is_empty() {
        f.render_widget(Paragraph::new("Select two or more runs with space in the runs view, then press c."), area);
        return;
    }
    let recs: Vec<RunRecord> = app.compare.iter().filter_map(|s| app.record(s.run).cloned()).collect();
    let [charts, tables] = Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(area);
    let [lc, cc] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(charts);

    // Group by everything but the seed.
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, r) in recs.iter().enumerate() {
        let k = group_key(r);
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, v)) => v.push(i),
            None => groups.push((k, vec![i])),
        }
    }
    let label = |idx: &[usize]| -> String {
        let r = &recs[idx[0]];
        if idx.len() == 1 {
            format!("#{} {}", r.id, r.arch())
        } else {
            format!("{} x{} seeds", r.arch(), idx.len())
        }
    };
    let mut loss_sets: Vec<(String, Vec<(f64, f64)>, usize)> = Vec::new();
    let mut curve_sets_all: Vec<(String, Vec<(f64, f64)>, usize)> = Vec::new();
    for (gi, (_, idx)) in groups.iter().enumerate() {
        let losses: Vec<Vec<(f64, f64)>> = idx.iter().map(|&i| loss_points(&app.compare[i], app.chart)).collect();
        let curves: Vec<Vec<(f64, f64)>> = idx
            .iter()
            .map(|&i| curve_sets(&app.compare[i]).into_iter().next().map(|c| c.1).unwrap_or_default())
            .collect();
        if idx.len() == 1 {
            loss_sets.push((label(idx), losses[0].clone(), gi));
            curve_sets_all.push((label(idx), curves[0].clone(), gi));
        } else {
            let [mean, lo, hi] = band(&losses);
            loss_sets.push((label(idx), mean, gi));
            loss_sets.push((String::new(), lo, gi));
            loss_sets.push((String::new(), hi, gi));
            let [mean, lo, hi] = band(&curves);
            curve_sets_all.push((label(idx), mean, gi));
            curve_sets_all.push((String::new(), lo, gi));
            curve_sets_all.push((String::new(), hi, gi));
        }
    }
    // The least-squares baseline of the first run, for reference.
    if let Some(ls) = curve_sets(&app.compare[0]).into_iter().find(|(n, _)| n == "least_squares") {
        curve_sets_all.push(("least_squares".into(), ls.1, usize::MAX));
    }
    for (sets, area, title, log, x) in [
        (&loss_sets, lc, " loss ", app.chart.log_y, "step"),
        (&curve_sets_all, cc, " ICL curve (latest eval) ", false, "examples"),
    ] {
        let all: Vec<&[(f64, f64)]> = sets.iter().map(|s| s.1.as_slice()).collect();
        let ds: Vec<Dataset> = sets
            .iter()
            .map(|(name, p, g)| {
                let style = if *g == usize::MAX { theme.fg(Color::Gray) } else { theme.series(*g) };
                let d = Dataset::default().marker(theme.marker()).graph_type(GraphType::Line).style(style).data(p);
                if name.is_empty() {
                    d.style(style.add_modifier(Modifier::DIM))
                } else {
                    d.name(name.clone())
                }
            })
            .collect();
        f.render_widget(chart(title.to_string(), Style::default(), ds, &all, log, x), area);
    }

    let diff = config_diff(&recs);
    let mut rows: Vec<Row> = Vec::new();
    for (k, vals) in diff.iter().take(12) {
        rows.push(Row::new(std::iter::once(Cell::from(k.clone())).chain(vals.iter().map(|v| Cell::from(v.clone())))));
    }
    rows.push(Row::new(vec![Cell::from("")]));
    let finals: Vec<Vec<(&str, String)>> =
        app.compare.iter().zip(&recs).map(|(s, r)| final_metrics(r, &s.evals)).collect();
    if let Some(first) = finals.first() {
        for i in 0..first.len() {
            rows.push(Row::new(
                std::iter::once(Cell::from(first[i].0).style(Style::default().add_modifier(Modifier::BOLD)))
                    .chain(finals.iter().map(|m| Cell::from(m[i].1.clone()))),
            ));
        }
    }
    let mut widths = vec![Constraint::Length(24)];
    widths.extend(recs.iter().map(|_| Constraint::Length(18)));
    let header = Row::new(std::iter::once("".to_string()).chain(recs.iter().map(|r| format!("#{} {}", r.id, r.arch()))))
        .style(Style::default().add_modifier(Modifier::BOLD));
    let title = if diff.is_empty() { " config identical; final metrics ".to_string() } else { format!(" {} config keys differ; final metrics ", diff.len()) };
    f.render_widget(Table::new(rows, widths).header(header).block(Block::default().borders(Borders::ALL).title(title)), tables);
}

fn draw_matrix(f: &mut Frame, area: Rect, app: &App, theme: Theme) {
    // Full cells (mark, mean ±std, seeds, paper, unfinished) need 24 columns each; narrower get
    // the mark, the mean and the paper's mark.
    let wide = area.width >= 14 + 2 + ARCHS.len() as u16 * 25;
    let cell_width = if wide { 24 } else { 10 };
    let mut rows = Vec::new();
    for (ti, task) in TASK_TITLES.iter().enumerate() {
        let mut cells = vec![Cell::from(*task)];
        for ai in 0..ARCHS.len() {
            let text = app.matrix_cell(ti, ai).map_or("·".to_string(), |c| matrix_cell_text(c, theme.ascii, wide));
            let mut cell = Cell::from(text);
            if app.matrix_cursor == (ti, ai) {
                cell = cell.style(theme.selected());
            }
            cells.push(cell);
        }
        rows.push(Row::new(cells));
    }
    let mut widths = vec![Constraint::Length(14)];
    widths.extend(ARCHS.iter().map(|_| Constraint::Length(cell_width)));
    let header = Row::new(std::iter::once("task \\ arch").chain(ARCHS.iter().copied())).style(Style::default().add_modifier(Modifier::BOLD));
    let [t, legend] = Layout::vertical([Constraint::Min(0), Constraint::Length(4)]).areas(area);
    let (agree, of) = crate::report::matrix::agreement(app.matrix.values());
    let title = format!(" each task's latest experiment: mark, final error mean ±std over n seeds, paper's mark (agree {agree}/{of}) ");
    f.render_widget(Table::new(rows, widths).header(header).block(Block::default().borders(Borders::ALL).title(title)), t);
    let rule = format!("{} Marks apply to the seed mean; pX is the paper's mark; (k…) counts unfinished runs.", crate::report::marks::RULE);
    f.render_widget(Paragraph::new(rule).wrap(Wrap { trim: true }).style(theme.fg(Color::DarkGray)), legend);
}

fn matrix_cell_text(c: &crate::report::matrix::Cell, ascii: bool, wide: bool) -> String {
    let paper = c.paper().map_or(String::new(), |m| format!(" p{}", m.symbol(ascii)));
    let pending = if c.unfinished.is_empty() { String::new() } else { format!(" ({}…)", c.unfinished.len()) };
    match c.error() {
        Some((mean, std)) if wide => {
            format!("{} {mean:.3}±{std:.2} n{}{paper}{pending}", c.mark().symbol(ascii), c.runs.len())
        }
        Some((mean, _)) => format!("{} {mean:.2}{paper}", c.mark().symbol(ascii)),
        None if wide => format!("·{paper}{pending}"),
        None => format!("·{paper}"),
    }
}

fn draw_form(f: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let form = &app.form;
    let mut rows = Vec::new();
    for (i, field) in FIELDS.iter().enumerate() {
        let value = match field {
            FieldId::Archs => ARCHS
                .iter()
                .enumerate()
                .map(|(ai, a)| {
                    let on = if form.archs[ai] { "[x]" } else { "[ ]" };
                    if i == form.cursor && ai == form.arch_cursor {
                        format!(">{on} {a}")
                    } else {
                        format!(" {on} {a}")
                    }
                })
                .collect::<Vec<_>>()
                .join(""),
            FieldId::Task => format!("‹ {} ›", TASKS[form.task]),
            other => {
                let v = form.value(*other);
                if i == form.cursor && form.editing {
                    format!("{v}█")
                } else {
                    v
                }
            }
        };
        let err = form.errors.get(&i).cloned().unwrap_or_default();
        let mut row = Row::new(vec![
            Cell::from(field.label(form)),
            Cell::from(value),
            Cell::from(err).style(theme.fg(Color::Red)),
        ]);
        if i == form.cursor {
            row = row.style(theme.selected());
        }
        rows.push(row);
    }
    let n = form.archs.iter().filter(|a| **a).count();
    let seeds = crate::store::query::parse_ids(std::slice::from_ref(&form.seeds)).map_or(0, |s| s.len());
    let title = format!(" new experiment: {} run{} ({n} arch x {seeds} seed) ", n * seeds, if n * seeds == 1 { "" } else { "s" });
    f.render_widget(
        Table::new(rows, [Constraint::Length(11), Constraint::Length(62), Constraint::Min(10)])
            .block(Block::default().borders(Borders::ALL).title(title)),
        area,
    );
}

fn draw_queue(f: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let q = &app.queue;
    let [dev, rest] = Layout::vertical([Constraint::Length(q.slots.len() as u16 + 2), Constraint::Min(0)]).areas(area);
    // The Slurm arrays this store follows, when there are any, below the runs.
    let arrays = (!app.slurm.is_empty()).then(|| slurm_lines(app, theme));
    let [jobs, slurm] = match &arrays {
        // The arrays' lines, their header and the border.
        Some((lines, _)) => Layout::vertical([Constraint::Min(4), Constraint::Length((lines.len() as u16 + 3).min(rest.height / 2 + 2))]).areas(rest),
        None => [rest, Rect::default()],
    };
    // One row per slot group (a device may have several): its slots, each free or its run.
    // A slot training several seeds as one model shows them all: `[#3 #4]`.
    let slot_texts: Vec<String> = q
        .slots
        .iter()
        .enumerate()
        .map(|(g, (_, n))| {
            let busy = q.group_slots.get(g).map_or(&[][..], Vec::as_slice);
            let slot = |i: usize| busy.get(i).map_or("[ ]".into(), |runs| format!("[{}]", runs.iter().map(|id| format!("#{id}")).collect::<Vec<_>>().join(" ")));
            (0..*n).map(slot).collect::<Vec<_>>().join(" ")
        })
        .collect();
    let dev_rows = q.slots.iter().enumerate().map(|(g, (d, n))| {
        let busy = q.group_slots.get(g).map_or(0, Vec::len);
        Row::new(vec![d.to_string(), format!("{busy}/{n} busy"), slot_texts[g].clone(), app.gpu_info.get(d).cloned().unwrap_or_default()])
    });
    let slots_width = slot_texts.iter().map(|t| t.chars().count()).max().unwrap_or(0).clamp(3, 60) as u16;
    f.render_widget(
        Table::new(
            dev_rows,
            [Constraint::Length(8), Constraint::Length(9), Constraint::Length(slots_width), Constraint::Min(0)],
        )
            .block(Block::default().borders(Borders::ALL).title(" devices ")),
        dev,
    );
    let ids = app.queue_ids();
    let rows = ids.iter().enumerate().map(|(i, id)| {
        let r = app.record(*id);
        let running = q.running.iter().find(|(rid, _)| rid == id);
        let state = match (running, r) {
            (Some(_), Some(r)) => progress_cell(r, app, 20),
            _ => "queued".into(),
        };
        let row = Row::new(vec![
            id.to_string(),
            running.map_or("-".into(), |(_, d)| d.to_string()),
            r.map_or(String::new(), |r| format!("{} x {}", r.task(), r.arch())),
            state,
        ]);
        if i == app.queue_cursor {
            row.style(theme.selected())
        } else {
            row
        }
    });
    let title = format!(" {} running, {} queued ", q.running.len(), q.queued.len());
    f.render_widget(
        Table::new(rows, [Constraint::Length(6), Constraint::Length(8), Constraint::Length(36), Constraint::Min(20)])
            .header(Row::new(vec!["ID", "DEVICE", "RUN", "PROGRESS"]).style(Style::default().add_modifier(Modifier::BOLD)))
            .block(Block::default().borders(Borders::ALL).title(title)),
        jobs,
    );
    if let Some((lines, selected)) = arrays {
        let title = format!(" Slurm arrays: {} (c collects the one under the cursor) ", app.slurm.len());
        let block = Block::default().borders(Borders::ALL).title(title);
        // The header stays; the arrays scroll so the one under the cursor is in view.
        let [head, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(block.inner(slurm));
        let offset = selected.map_or(0, |line| line.saturating_sub(body.height.saturating_sub(1) as usize));
        f.render_widget(block, slurm);
        f.render_widget(Paragraph::new(slurm_header()), head);
        f.render_widget(Paragraph::new(lines).scroll((offset.min(u16::MAX as usize) as u16, 0)), body);
    }
}

/// At most this many failed tasks are listed per array (`slurm status DIR` lists them all).
const FAILED_SHOWN: usize = 4;

/// The column titles of the Slurm arrays' lines.
fn slurm_header() -> Line<'static> {
    Line::styled(
        format!("{:<14} {:<24} {:>5} {:>7} {:>7} {:>5} {:>6} {:>7}  DIR", "JOB", "ARRAY", "TASKS", "PENDING", "RUNNING", "DONE", "FAILED", "BUNDLES"),
        Style::default().add_modifier(Modifier::BOLD),
    )
}

/// Per array a line of counts, its failed tasks (Slurm state, log) and why Slurm did not
/// answer, if it did not; and the index of the line of the array under the cursor.
fn slurm_lines(app: &App, theme: Theme) -> (Vec<Line<'static>>, Option<usize>) {
    let mut lines = Vec::new();
    let under = app.array_at_cursor().map(|a| a.dir.clone());
    let mut selected = None;
    for a in &app.slurm {
        let jobs = if a.job_ids.is_empty() { "-".to_string() } else { a.job_ids.join(",") };
        let waiting = if a.not_submitted > 0 { format!(" ({} not submitted)", a.not_submitted) } else { String::new() };
        let text = format!(
            "{:<14} {:<24} {:>5} {:>7} {:>7} {:>5} {:>6} {:>7}  {}{waiting}",
            jobs,
            a.name,
            a.tasks,
            a.pending,
            a.running,
            a.done,
            a.failed,
            format!("{}/{}", a.bundles, a.runs),
            a.dir.display()
        );
        let style = if under.as_ref() == Some(&a.dir) {
            selected = Some(lines.len());
            theme.selected()
        } else {
            Style::default()
        };
        lines.push(Line::styled(text, style));
        for t in a.failed_tasks.iter().take(FAILED_SHOWN) {
            let log = t.log.as_ref().map_or("-".into(), |l| l.display().to_string());
            lines.push(Line::styled(format!("  task {} ({}): {}; log {log}", t.index, t.runs.join(" "), t.state), theme.fg(Color::Red)));
        }
        if a.failed_tasks.len() > FAILED_SHOWN {
            lines.push(Line::raw(format!(
                "  ... {} more failed: icl-lab slurm status {}",
                a.failed_tasks.len() - FAILED_SHOWN,
                a.dir.display()
            )));
        }
        if let Some(e) = &a.error {
            lines.push(Line::styled(format!("  ! {e}"), theme.fg(Color::Yellow)));
        }
    }
    (lines, selected)
}

fn draw_help(f: &mut Frame, area: Rect, theme: Theme) {
    let mut rows = Vec::new();
    let mut last = None;
    for b in BINDINGS {
        if last != Some(b.scope) {
            rows.push(Row::new(vec![Cell::from(b.scope.title()).style(theme.fg(Color::Cyan).add_modifier(Modifier::BOLD))]));
            last = Some(b.scope);
        }
        let keys = b.keys.iter().map(key_name).collect::<Vec<_>>().join(" ");
        rows.push(Row::new(vec![Cell::from(format!("  {keys}")), Cell::from(b.help)]));
    }
    f.render_widget(
        Table::new(rows, [Constraint::Length(16), Constraint::Min(0)]).block(Block::default().borders(Borders::ALL).title(" keys ")),
        area,
    );
}

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h }
}

fn draw_popup(f: &mut Frame, p: &Popup, app: &App, theme: Theme) {
    let (title, lines): (&str, Vec<String>) = match p {
        Popup::ConfirmCancel(id) => ("cancel", vec![format!("Cancel run {id}?"), String::new(), "y / Enter: cancel it   any other key: keep it".into()]),
        Popup::Quit { alive } => (
            "quit",
            vec![
                format!("{alive} run(s) are queued or running."),
                String::new(),
                "l  leave them running headless (this process stays until they finish)".into(),
                "s  stop them (interrupted, resumable) and quit".into(),
                "any other key: stay".into(),
            ],
        ),
        Popup::EditNote { text, .. } => ("note (Enter saves, Esc discards)", vec![format!("{text}█")]),
        Popup::EditTags { text, .. } => ("tags, space-separated (Enter saves)", vec![format!("{text}█")]),
        Popup::SaveAs { text } => ("save the form as (Enter saves)", vec![format!("{text}█")]),
        Popup::Files { files, cursor } => {
            let base = &app.experiments_dir;
            let lines = files
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let name = p.strip_prefix(base).unwrap_or(p).display().to_string();
                    format!("{} {name}", if i == *cursor { ">" } else { " " })
                })
                .collect();
            ("load an experiment (Enter)", lines)
        }
    };
    let w = lines.iter().map(|l| l.chars().count()).max().unwrap_or(20).max(title.len() + 4) as u16 + 4;
    let area = centered(f.area(), w, lines.len() as u16 + 2);
    f.render_widget(Clear, area);
    f.render_widget(
        Paragraph::new(lines.into_iter().map(Line::from).collect::<Vec<_>>())
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(format!(" {title} ")).border_style(theme.fg(Color::Yellow))),
        area,
    );
}
