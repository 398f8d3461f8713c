DROP TABLE deliveries;
DROP TABLE subscription_firings;
DROP TABLE subscriptions;
DROP TABLE alerts;
DROP TABLE destinations;
