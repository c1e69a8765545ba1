/** The configuration arguments `serve` and `check-config` share: `[-c mosquitto.conf] [--config config.json] [-h]`. */

export interface ConfigArgs {
  mosquittoConf?: string;
  configJson?: string;
  help?: boolean;
}

/** Parse the shared arguments; throws with a one-line reason on anything else. */
export function parseConfigArgs(argv: string[]): ConfigArgs {
  const args: ConfigArgs = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const value = (): string => {
      const v = argv[i + 1];
      if (v === undefined || v === '') throw new Error(`${arg} needs a file name`);
      i++;
      return v;
    };
    if (arg === '-c' || arg === '--conf') args.mosquittoConf = value();
    else if (arg === '--config') args.configJson = value();
    else if (arg.startsWith('--config=')) args.configJson = arg.slice('--config='.length);
    else if (arg === '-h' || arg === '--help') args.help = true;
    else throw new Error(`unknown argument "${arg}"`);
  }
  return args;
}
