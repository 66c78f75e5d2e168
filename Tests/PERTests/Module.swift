// Tests of the PER module. Each concern has its own file beside this one.
