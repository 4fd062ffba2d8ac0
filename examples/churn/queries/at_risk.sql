-- The ten month-to-month customers most likely to churn, scored row by row with the scalar
-- function: its arguments are the manifest's input columns, in order, from the governed table.
SELECT
  customerID,
  tenure,
  monthly_charges,
  telco_churn(tenure, monthly_charges, total_charges, senior_citizen, contract, payment_method,
              internet_service, paperless_billing, tech_support, online_security) AS churn_probability
FROM customers
WHERE contract = 'Month-to-month'
ORDER BY churn_probability DESC, customerID
LIMIT 10;
