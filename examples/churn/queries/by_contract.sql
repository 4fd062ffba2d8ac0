-- Mean churn probability by contract, beside the share of customers who did churn: the
-- model's scores (telco_churn's table function) joined with the consumer's CRM table, whose
-- Churn label the model never sees.
SELECT
  c.Contract AS contract,
  count(*) AS customers,
  round(avg(s.churn_probability), 4) AS mean_probability,
  round(avg(CASE WHEN c.Churn = 'Yes' THEN 1.0 ELSE 0.0 END), 4) AS churned
FROM telco_churn('customers') AS s
JOIN crm AS c ON s.customerID = c.customerID
GROUP BY c.Contract
ORDER BY mean_probability DESC;
