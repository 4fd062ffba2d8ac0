//! Nelder-Mead: minimises a function of a few unconstrained variables without derivatives.
//! Enough for three or four smoothing parameters; bounds are handled by the caller's transform.

/// Minimises `f` from `start` within `max_evaluations` calls; returns the best point and value.
pub fn nelder_mead(
    f: &dyn Fn(&[f64]) -> f64,
    start: &[f64],
    max_evaluations: usize,
) -> (Vec<f64>, f64) {
    const REFLECT: f64 = 1.0;
    const EXPAND: f64 = 2.0;
    const CONTRACT: f64 = 0.5;
    const SHRINK: f64 = 0.5;
    const STEP: f64 = 0.5;
    const TOLERANCE: f64 = 1e-12;

    let n = start.len();
    let mut simplex: Vec<(Vec<f64>, f64)> = Vec::with_capacity(n + 1);
    simplex.push((start.to_vec(), f(start)));
    for i in 0..n {
        let mut point = start.to_vec();
        if let Some(x) = point.get_mut(i) {
            *x += STEP;
        }
        let value = f(&point);
        simplex.push((point, value));
    }
    let mut evaluations = n + 1;

    while evaluations < max_evaluations {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (Some(best), Some(worst)) = (simplex.first(), simplex.last()) else {
            break;
        };
        let (best_value, worst_value) = (best.1, worst.1);
        if (worst_value - best_value).abs() <= TOLERANCE * (1.0 + best_value.abs()) {
            break;
        }
        let worst_point = worst.0.clone();
        let second_worst = simplex
            .get(n.saturating_sub(1))
            .map_or(worst_value, |p| p.1);

        // Centroid of all but the worst point.
        let mut centroid = vec![0.0; n];
        for (point, _) in simplex.iter().take(n) {
            for (c, x) in centroid.iter_mut().zip(point) {
                *c += x / n as f64;
            }
        }
        let towards = |factor: f64| -> Vec<f64> {
            centroid
                .iter()
                .zip(&worst_point)
                .map(|(c, w)| c + factor * (c - w))
                .collect()
        };

        let reflected = towards(REFLECT);
        let reflected_value = f(&reflected);
        evaluations += 1;
        let replacement = if reflected_value < best_value {
            let expanded = towards(EXPAND);
            let expanded_value = f(&expanded);
            evaluations += 1;
            if expanded_value < reflected_value {
                Some((expanded, expanded_value))
            } else {
                Some((reflected, reflected_value))
            }
        } else if reflected_value < second_worst {
            Some((reflected, reflected_value))
        } else {
            let contracted = towards(-CONTRACT);
            let contracted_value = f(&contracted);
            evaluations += 1;
            (contracted_value < worst_value).then_some((contracted, contracted_value))
        };

        match replacement {
            Some(point) => {
                if let Some(last) = simplex.last_mut() {
                    *last = point;
                }
            }
            None => {
                // Shrink every point towards the best one.
                let best_point = simplex.first().map(|p| p.0.clone()).unwrap_or_default();
                for (point, value) in simplex.iter_mut().skip(1) {
                    for (x, b) in point.iter_mut().zip(&best_point) {
                        *x = b + SHRINK * (*x - b);
                    }
                    *value = f(point);
                    evaluations += 1;
                }
            }
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    simplex
        .into_iter()
        .next()
        .unwrap_or_else(|| (start.to_vec(), f(start)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_minimum_of_a_bowl_and_of_rosenbrock() {
        let bowl = |x: &[f64]| (x[0] - 3.0).powi(2) + (x[1] + 1.0).powi(2) + 2.0;
        let (point, value) = nelder_mead(&bowl, &[0.0, 0.0], 1000);
        assert!((point[0] - 3.0).abs() < 1e-4 && (point[1] + 1.0).abs() < 1e-4);
        assert!((value - 2.0).abs() < 1e-8);

        let rosenbrock = |x: &[f64]| (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2);
        let (point, _) = nelder_mead(&rosenbrock, &[-1.2, 1.0], 5000);
        assert!((point[0] - 1.0).abs() < 1e-3, "{point:?}");
    }
}
