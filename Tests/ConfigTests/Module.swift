// Tests of the Config module. Each concern has its own file beside this one.
