-- The backtest in SQL, under policies/forecast-backtest.toml: the forecaster sees quarters
-- before 2015Q1 only; its forecasts for the 8 hidden quarters are joined with the actuals (a
-- plain table, never a model's input) and scored per region: mean absolute error and how many
-- outcomes fell inside the 80% and 95% intervals. The forecasts name their columns as the
-- manifest does (series, time), the actuals as the consumer's table does (region, quarter).
SELECT
  f.series AS region,
  count(*) AS quarters,
  round(avg(abs(f.yhat - a.nights)), 3) AS mean_abs_error,
  sum(CASE WHEN a.nights BETWEEN f.lo80 AND f.hi80 THEN 1 ELSE 0 END) AS inside_80,
  sum(CASE WHEN a.nights BETWEEN f.lo95 AND f.hi95 THEN 1 ELSE 0 END) AS inside_95
FROM seasonal_forecast('history') AS f
JOIN actuals AS a ON f.series = a.region AND f.time = a.quarter
GROUP BY f.series
ORDER BY f.series;
