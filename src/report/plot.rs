//! ICL curves as SVG files (plotters): error against the number of in-context examples, one
//! solid line per architecture (the mean over seeds), the baselines dashed.

use std::path::Path;

use plotters::prelude::*;

/// One line: a name and its points (examples, error); NaN points are gaps.
pub struct Series {
    pub name: String,
    pub points: Vec<(f32, f32)>,
}

/// A chart: title, y axis label, model lines and baseline lines.
pub struct CurvePlot {
    pub title: String,
    pub y_label: String,
    pub models: Vec<Series>,
    pub baselines: Vec<Series>,
    /// Upper end of the y axis (errors above are clipped), e.g. 1.5x the trivial predictor.
    pub y_max: f32,
}

const MODEL_COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
];
const BASELINE_COLORS: [RGBColor; 4] =
    [RGBColor(90, 90, 90), RGBColor(150, 150, 150), RGBColor(188, 189, 34), RGBColor(23, 190, 207)];

/// Runs of finite points: a NaN breaks the line.
fn segments(points: &[(f32, f32)], y_max: f32) -> Vec<Vec<(f32, f32)>> {
    let mut out = vec![Vec::new()];
    for &(x, y) in points {
        if y.is_finite() {
            out.last_mut().unwrap().push((x, y.min(y_max)));
        } else if !out.last().unwrap().is_empty() {
            out.push(Vec::new());
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

impl CurvePlot {
    /// Writes the chart as an SVG file at `path`.
    pub fn write_svg(&self, path: &Path) -> Result<(), String> {
        let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let x_max = self
            .models
            .iter()
            .chain(&self.baselines)
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .fold(1.0f32, f32::max);
        let y_max = if self.y_max.is_finite() && self.y_max > 0.0 { self.y_max } else { 1.0 };
        let root = SVGBackend::new(path, (760, 460)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(0f32..x_max, 0f32..y_max)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("in-context examples")
            .y_desc(&self.y_label)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| err(&e))?;
        for (i, s) in self.models.iter().enumerate() {
            let color = MODEL_COLORS[i % MODEL_COLORS.len()];
            let style = color.stroke_width(2);
            for (j, seg) in segments(&s.points, y_max).into_iter().enumerate() {
                let drawn = chart.draw_series(LineSeries::new(seg, style)).map_err(|e| err(&e))?;
                if j == 0 {
                    drawn.label(&s.name).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
                }
            }
        }
        for (i, s) in self.baselines.iter().enumerate() {
            let color = BASELINE_COLORS[i % BASELINE_COLORS.len()];
            let style = ShapeStyle::from(color).stroke_width(1);
            for (j, seg) in segments(&s.points, y_max).into_iter().enumerate() {
                let drawn =
                    chart.draw_series(DashedLineSeries::new(seg, 5, 4, style)).map_err(|e| err(&e))?;
                if j == 0 {
                    drawn.label(&s.name).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
                }
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_points_split_lines_and_large_errors_are_clipped() {
        let s = segments(&[(0.0, 1.0), (1.0, f32::NAN), (2.0, 5.0), (3.0, 0.5)], 2.0);
        assert_eq!(s, vec![vec![(0.0, 1.0)], vec![(2.0, 2.0), (3.0, 0.5)]]);
        assert!(segments(&[(0.0, f32::NAN)], 1.0).is_empty());
    }

    #[test]
    fn the_svg_names_every_series() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.svg");
        let plot = CurvePlot {
            title: "linear regression".into(),
            y_label: "squared error / 5".into(),
            models: vec![Series { name: "gpt2".into(), points: vec![(0.0, 1.0), (1.0, 0.5), (2.0, f32::NAN)] }],
            baselines: vec![Series { name: "least_squares".into(), points: vec![(0.0, 1.0), (1.0, 0.0)] }],
            y_max: 1.5,
        };
        plot.write_svg(&path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        for text in ["linear regression", "gpt2", "least_squares", "in-context examples", "squared error / 5"] {
            assert!(svg.contains(text), "{text} missing");
        }
        assert!(svg.starts_with("<svg"));
    }
}
