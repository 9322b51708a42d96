#!/usr/bin/env node
import { App } from 'aws-cdk-lib';
import { addComplianceChecks } from './compliance';
import { ConsumerStack } from './consumer-stack';
import { ModelOwnerStack } from './model-owner-stack';
import { sampleSettingsFromContext } from './sample-settings';

// CloudFormation's built-in template validation is most of a synth's time and memory (about 5 s and 350 MB of WASM
// rules); the test suite runs it on this same app with its findings as errors (test/sample-app.test.ts).
const app = new App({ builtinCloudFormationValidation: false });
const settings = sampleSettingsFromContext(app);
new ModelOwnerStack(app, 'SealedInferenceModelOwner', settings, { env: { account: settings.accounts?.modelOwner } });
new ConsumerStack(app, 'SealedInferenceConsumer', settings, { env: { account: settings.accounts?.consumer } });
addComplianceChecks(app);
app.synth();
