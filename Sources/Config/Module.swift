// The configuration model, its text syntax (parse and print), validation, and the store with commit, confirm and rollback.
//
// This file names the module; its types live beside it, one concern per file.
