// The shell for the serial console and SSH: line editor, login, command tree, help, completion, pager.
//
// This file names the module; its types live beside it, one concern per file.
