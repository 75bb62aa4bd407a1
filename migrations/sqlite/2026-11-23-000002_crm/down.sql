DROP TABLE activities;
DROP TABLE stage_transitions;
DROP TABLE opportunities;
DROP TABLE loss_reasons;
DROP TABLE contacts;
DROP TABLE accounts;
DROP TABLE leads;
DROP TABLE scoring_rules;
